//! How plain scalars become typed values. Two schemas, because two families of formats are
//! read and each must mean what its own tools mean by the same text:
//!
//! | text          | [`Schema::Yaml11`] (Ansible: inventories, vars, playbooks) | [`Schema::Core`] (stack, manifests) |
//! |---------------|-----------------------|----------------------|
//! | `yes` `on`    | `true`                | `"yes"` `"on"`       |
//! | `0755`        | `493` (octal)         | `"0755"`             |
//! | `0o17`        | `"0o17"`              | `15`                 |
//! | `1e5`         | `"1e5"`               | `100000.0`           |
//!
//! Yaml11 is PyYAML's resolver (what `ansible-inventory` and `ansible-playbook` use); Core
//! is YAML 1.2's core schema as serde_yaml implemented it, which is what Kubernetes users
//! write for. Quoted and block scalars are always strings, and `!!str`-style tags win.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Number, Value};

/// The scalar resolution rules of a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// YAML 1.1 as PyYAML resolves it (Ansible).
    Yaml11,
    /// YAML 1.2 core (the stack file, Kubernetes manifests).
    Core,
}

/// Compile a pattern written in this crate (the unit tests exercise every one).
#[allow(clippy::expect_used)]
fn static_regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

// PyYAML's implicit resolvers for int and float (YAML 1.1).
static INT_DEC: LazyLock<Regex> = LazyLock::new(|| static_regex(r"^[-+]?(0|[1-9][0-9_]*)$"));
static INT_OCT: LazyLock<Regex> = LazyLock::new(|| static_regex(r"^[-+]?0[0-7_]+$"));
static INT_HEX: LazyLock<Regex> = LazyLock::new(|| static_regex(r"^[-+]?0x[0-9a-fA-F_]+$"));
static INT_BIN: LazyLock<Regex> = LazyLock::new(|| static_regex(r"^[-+]?0b[01_]+$"));
static FLOAT: LazyLock<Regex> =
    LazyLock::new(|| static_regex(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$"));

/// The value of a scalar under `schema`.
pub(crate) fn resolve(schema: Schema, text: &str, plain: bool, tag: Option<&str>) -> Value {
    let tag_suffix = tag.map(|t| t.rsplit([':', '!']).next().unwrap_or(t));
    match tag_suffix {
        // `!unsafe` and `!vault` are Ansible's tags; both carry strings.
        Some("str" | "unsafe" | "vault") => return Value::String(text.to_owned()),
        Some("int" | "float" | "bool" | "null") => {}
        Some(_) | None if !plain => return Value::String(text.to_owned()),
        _ => {}
    }
    match schema {
        Schema::Yaml11 => yaml11(text),
        Schema::Core => core(text),
    }
}

fn yaml11(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        _ => {}
    }
    let (neg, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let clean = digits.replace('_', "");
    let parsed = if INT_HEX.is_match(text) {
        clean.get(2..).and_then(|d| i64::from_str_radix(d, 16).ok())
    } else if INT_BIN.is_match(text) {
        clean.get(2..).and_then(|d| i64::from_str_radix(d, 2).ok())
    } else if INT_OCT.is_match(text) {
        clean.get(1..).and_then(|d| i64::from_str_radix(d, 8).ok())
    } else if INT_DEC.is_match(text) {
        clean.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(n) = parsed {
        // `checked_neg`: -i64::MIN does not exist; such a text stays a string below.
        if let Some(n) = if neg { n.checked_neg() } else { Some(n) } {
            return Value::Number(Number::from(n));
        }
    }
    if FLOAT.is_match(text)
        && text.chars().any(|c| c.is_ascii_digit())
        && let Some(n) = text
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

fn core(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = core_int(text) {
        return Value::Number(n);
    }
    if !digits_but_not_number(text)
        && let Some(n) = core_float(text).and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

/// serde_yaml's integer rules: optional sign, `0x`/`0o`/`0b` prefixes, and no leading zero
/// on a decimal (YAML 1.2 reads `0755` as a string).
fn core_int(text: &str) -> Option<Number> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body.starts_with(['+', '-']) {
        return None;
    }
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else if digits_but_not_number(text) {
        return None;
    } else {
        (10, body)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if !neg {
        return Some(Number::from(magnitude));
    }
    // -9223372036854775808 fits; anything larger in magnitude is not an i64.
    let n = 0i64.checked_sub_unsigned(magnitude)?;
    Some(Number::from(n))
}

fn core_float(text: &str) -> Option<f64> {
    let body = match text.strip_prefix('+') {
        Some(b) if b.starts_with(['+', '-']) => return None,
        Some(b) => b,
        None => text,
    };
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    body.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn digits_but_not_number(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    t.len() > 1 && t.starts_with('0') && t[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn y11(s: &str) -> Value {
        resolve(Schema::Yaml11, s, true, None)
    }
    fn core(s: &str) -> Value {
        resolve(Schema::Core, s, true, None)
    }

    #[test]
    fn yaml_1_1_scalars() {
        assert_eq!(y11("yes"), json!(true));
        assert_eq!(y11("Off"), json!(false));
        assert_eq!(resolve(Schema::Yaml11, "yes", false, None), json!("yes"));
        assert_eq!(y11("0755"), json!(493));
        assert_eq!(y11("0x1F"), json!(31));
        assert_eq!(y11("-22"), json!(-22));
        assert_eq!(y11("1.5"), json!(1.5));
        assert_eq!(y11("1e5"), json!("1e5"));
        assert_eq!(y11("~"), Value::Null);
        assert_eq!(
            resolve(Schema::Yaml11, "22", true, Some("!!str")),
            json!("22")
        );
        assert_eq!(
            resolve(Schema::Yaml11, "{{ x }}", false, Some("!unsafe")),
            json!("{{ x }}")
        );
        // -i64::MIN overflowed a negation.
        assert_eq!(y11("-0x8000000000000000"), json!("-0x8000000000000000"));
        assert_eq!(y11("-9223372036854775808"), json!("-9223372036854775808"));
    }

    #[test]
    fn core_scalars_match_serde_yaml() {
        assert_eq!(core("yes"), json!("yes"));
        assert_eq!(core("True"), json!(true));
        assert_eq!(core("0755"), json!("0755"));
        assert_eq!(core("0o17"), json!(15));
        assert_eq!(core("0x1F"), json!(31));
        assert_eq!(core("-0x10"), json!(-16));
        assert_eq!(core("+7"), json!(7));
        assert_eq!(core("1e5"), json!(100000.0));
        assert_eq!(core("1.20"), json!(1.2));
        assert_eq!(core("-9223372036854775808"), json!(i64::MIN));
        assert_eq!(core("18446744073709551615"), json!(u64::MAX));
        assert_eq!(core("inf"), json!("inf"));
        assert_eq!(core("100Gi"), json!("100Gi"));
        assert_eq!(core(""), Value::Null);
        assert_eq!(core("--1"), json!("--1"));
    }
}
