//! Ansible's INI inventory format (the `ini` inventory plugin): host lines with inline
//! `key=value` variables, `[group]`, `[group:vars]` and `[group:children]` sections, ranges.
//! Values are read the way Ansible reads them, with Python's `ast.literal_eval` falling back
//! to the raw string, so `port=2222` is a number and `become=yes` stays the string "yes".

use std::collections::BTreeMap;

use serde_json::{Number, Value};

use crate::builder::{Builder, Layer, Var};
use crate::error::{InventoryError, Source};
use crate::hostrange::parse_host_pattern;
use crate::shell;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Hosts,
    Vars,
    Children,
}

pub(crate) fn load(src: &Source, b: &mut Builder) -> Result<(), InventoryError> {
    let mut group = "ungrouped".to_owned();
    let mut state = State::Hosts;
    // Groups referenced by `[x:vars]` or `[p:children]` before being defined: Ansible requires
    // them to be defined somewhere in the file (line, column, section) for the error.
    let mut pending: BTreeMap<String, (usize, String, &'static str)> = BTreeMap::new();

    for (idx, raw) in src.text.lines().enumerate() {
        let line_no = idx + 1;
        let indent = raw.len() - raw.trim_start().len();
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let col = indent + 1;
        if line.starts_with('[') {
            let (name, kind) = parse_section(line).ok_or_else(|| {
                src.syntax(line_no, col, format!("invalid section header `{line}`"))
            })?;
            state = match kind {
                None | Some("hosts") => State::Hosts,
                Some("vars") => State::Vars,
                Some("children") => State::Children,
                Some(other) => {
                    return Err(src.invalid(
                        line_no,
                        col,
                        format!("[{name}:{other}]"),
                        format!("unknown section type `{other}` (expected `vars` or `children`)"),
                    ));
                }
            };
            group = name.to_owned();
            if state == State::Vars {
                if !b.has_group(&group) {
                    pending.entry(group.clone()).or_insert((
                        line_no,
                        format!("[{group}:vars]"),
                        "vars",
                    ));
                }
            } else {
                b.add_group(&group);
                pending.remove(&group);
            }
            continue;
        }
        match state {
            State::Hosts => parse_host_line(src, b, &group, raw, line_no)?,
            State::Children => {
                let child = line.split_whitespace().next().unwrap_or(line);
                if !b.has_group(child) {
                    pending.entry(child.to_owned()).or_insert((
                        line_no,
                        format!("[{group}:children]"),
                        "children",
                    ));
                }
                b.add_child(&group, child);
            }
            State::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(src.invalid(
                        line_no,
                        col,
                        format!("[{group}:vars]"),
                        format!("expected `key=value`, found `{line}`"),
                    ));
                };
                let key = k.trim();
                let path = format!("[{group}:vars] {key}");
                b.check_var(src, line_no, col, &path, key)?;
                b.set_group_var(
                    &group,
                    key,
                    Var {
                        value: parse_value(v.trim()),
                        loc: src.location(line_no, col),
                    },
                    Layer::Inline,
                );
            }
        }
    }
    if let Some((name, (line, section, kind))) = pending.into_iter().next() {
        let message = if kind == "vars" {
            format!("section {section} is for group `{name}`, which is not defined in this file")
        } else {
            format!("section {section} names group `{name}`, which is not defined in this file")
        };
        return Err(src.invalid(line, 1, section, message));
    }
    Ok(())
}

/// `[name]` or `[name:kind]`, optionally followed by a comment.
fn parse_section(line: &str) -> Option<(&str, Option<&str>)> {
    let end = line.find(']')?;
    let rest = line[end + 1..].trim();
    if !(rest.is_empty() || rest.starts_with('#') || rest.starts_with(';')) {
        return None;
    }
    let inner = &line[1..end];
    let (name, kind) = match inner.split_once(':') {
        Some((n, k)) => (n, Some(k)),
        None => (inner, None),
    };
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return None;
    }
    Some((name, kind))
}

fn parse_host_line(
    src: &Source,
    b: &mut Builder,
    group: &str,
    raw: &str,
    line_no: usize,
) -> Result<(), InventoryError> {
    let words = shell::split(raw, true).map_err(|m| src.syntax(line_no, 1, m))?;
    let Some(first) = words.first() else {
        return Ok(());
    };
    let col_of = |w: &shell::Word| raw[..w.offset].chars().count() + 1;
    let path = format!("[{group}] {}", first.text);
    let (hosts, port) = parse_host_pattern(&first.text)
        .map_err(|m| src.invalid(line_no, col_of(first), &path, m))?;
    let mut vars = Vec::new();
    for w in &words[1..] {
        let Some((k, v)) = w.text.split_once('=') else {
            return Err(src.invalid(
                line_no,
                col_of(w),
                &path,
                format!("expected `key=value` host variable, found `{}`", w.text),
            ));
        };
        b.check_var(src, line_no, col_of(w), &format!("{path} {k}"), k)?;
        vars.push((k.to_owned(), parse_value(v), col_of(w)));
    }
    for host in hosts {
        b.add_host(&host, group);
        if let Some(port) = port {
            b.set_host_var(
                &host,
                "ansible_port",
                Var {
                    value: port.into(),
                    loc: src.location(line_no, col_of(first)),
                },
                Layer::Inline,
            );
        }
        for (k, v, col) in &vars {
            b.set_host_var(
                &host,
                k,
                Var {
                    value: v.clone(),
                    loc: src.location(line_no, *col),
                },
                Layer::Inline,
            );
        }
    }
    Ok(())
}

/// Python's `ast.literal_eval` for the literals people write in inventories (numbers,
/// quoted strings, True/False/None, lists, tuples, dicts); anything else is the raw string.
pub(crate) fn parse_value(v: &str) -> Value {
    let mut p = PyLit {
        s: v.as_bytes(),
        i: 0,
        text: v,
    };
    match p.value() {
        Some(val) => {
            p.ws();
            // literal_eval tokenizes like Python, so a trailing `# comment` is dropped.
            if p.i == p.s.len() || p.s[p.i] == b'#' {
                val
            } else {
                Value::String(v.to_owned())
            }
        }
        None => Value::String(v.to_owned()),
    }
}

struct PyLit<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl PyLit<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        match *self.s.get(self.i)? {
            b'\'' | b'"' => self.string().map(Value::String),
            b'[' => self.seq(b'[', b']'),
            b'(' => self.seq(b'(', b')'),
            b'{' => self.dict(),
            _ => self.atom(),
        }
    }

    fn string(&mut self) -> Option<String> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out = String::new();
        let rest = &self.text[self.i..];
        let mut chars = rest.char_indices();
        while let Some((off, c)) = chars.next() {
            match c {
                c if c as u32 == quote as u32 => {
                    self.i += off + 1;
                    return Some(out);
                }
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    e @ ('\\' | '\'' | '"') => out.push(e),
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                },
                c => out.push(c),
            }
        }
        None
    }

    fn seq(&mut self, open: u8, close: u8) -> Option<Value> {
        self.eat(open);
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(Value::Array(items));
            }
            items.push(self.value()?);
            if !self.eat(b',') {
                return self.eat(close).then_some(Value::Array(items));
            }
        }
    }

    fn dict(&mut self) -> Option<Value> {
        self.eat(b'{');
        let mut map = serde_json::Map::new();
        loop {
            if self.eat(b'}') {
                return Some(Value::Object(map));
            }
            let key = match self.value()? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if !self.eat(b':') {
                return None;
            }
            map.insert(key, self.value()?);
            if !self.eat(b',') {
                return self.eat(b'}').then_some(Value::Object(map));
            }
        }
    }

    fn atom(&mut self) -> Option<Value> {
        let start = self.i;
        while self.i < self.s.len()
            && !matches!(self.s[self.i], b',' | b']' | b')' | b'}' | b':')
            && !self.s[self.i].is_ascii_whitespace()
        {
            self.i += 1;
        }
        let tok = &self.text[start..self.i];
        match tok {
            "True" => return Some(Value::Bool(true)),
            "False" => return Some(Value::Bool(false)),
            "None" => return Some(Value::Null),
            _ => {}
        }
        let (neg, digits) = match tok.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, tok.strip_prefix('+').unwrap_or(tok)),
        };
        if digits.is_empty()
            || !digits.as_bytes()[0].is_ascii_digit() && digits.as_bytes()[0] != b'.'
        {
            return None;
        }
        let clean = digits.replace('_', "");
        let int = if let Some(h) = clean
            .strip_prefix("0x")
            .or_else(|| clean.strip_prefix("0X"))
        {
            i64::from_str_radix(h, 16).ok()
        } else if let Some(o) = clean
            .strip_prefix("0o")
            .or_else(|| clean.strip_prefix("0O"))
        {
            i64::from_str_radix(o, 8).ok()
        } else if let Some(bn) = clean
            .strip_prefix("0b")
            .or_else(|| clean.strip_prefix("0B"))
        {
            i64::from_str_radix(bn, 2).ok()
        } else if clean.len() > 1
            && clean.starts_with('0')
            && clean.bytes().all(|b| b.is_ascii_digit())
        {
            // Python 3 rejects `0755`: it stays a string, as in Ansible.
            return None;
        } else {
            clean.parse::<i64>().ok()
        };
        if let Some(n) = int {
            return Some(Value::Number(Number::from(if neg { -n } else { n })));
        }
        let f: f64 = clean.parse().ok()?;
        Number::from_f64(if neg { -f } else { f }).map(Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literal_eval() {
        assert_eq!(parse_value("2222"), json!(2222));
        assert_eq!(parse_value("-1.5"), json!(-1.5));
        assert_eq!(parse_value("yes"), json!("yes"));
        assert_eq!(parse_value("True"), json!(true));
        assert_eq!(parse_value("None"), json!(null));
        assert_eq!(parse_value("'quoted'"), json!("quoted"));
        assert_eq!(parse_value("\"a b\""), json!("a b"));
        assert_eq!(parse_value("['a', 2, [True]]"), json!(["a", 2, [true]]));
        assert_eq!(parse_value("{'k': 'v', 'n': 1}"), json!({"k": "v", "n": 1}));
        assert_eq!(parse_value("0755"), json!("0755"));
        assert_eq!(parse_value("0.5"), json!(0.5));
        assert_eq!(parse_value("10.0.0.1"), json!("10.0.0.1"));
        assert_eq!(parse_value("1 # note"), json!(1));
        assert_eq!(parse_value("a.b # note"), json!("a.b # note"));
        assert_eq!(parse_value("~/.ssh/id"), json!("~/.ssh/id"));
        assert_eq!(parse_value(""), json!(""));
    }
}
