//! How an operator names OSD devices: the `rookery_devices` host/group variable.
//!
//! ```yaml
//! all:
//!   vars:
//!     rookery_devices:
//!       - {class: nvme, size: "100Gi..2Ti"}     # rule: every available NVMe in range
//!   hosts:
//!     node1:
//!       rookery_devices:                        # a host var replaces the group's list
//!         - name: /dev/disk/by-id/wwn-0x5000c500a1b2c3d4
//!           wipe: true                          # may be wiped (with --wipe)
//!         - serial: S3Z9NB0K123456
//!         - wwn: "0x5000c500a1b2c3d5"
//!         - {model: "Samsung SSD 8*", min_size: 500Gi}
//!         - {all: true}                         # every available device
//! ```
//!
//! An entry either *names* one device (`name` = `/dev/sdb`, `sdb` or a `/dev/disk/by-*`
//! link; or `serial`; or `wwn`) or gives *rules* (`class` nvme/ssd/hdd, `size` range
//! `"MIN..MAX"` with either end optional, `min_size`, `max_size`, `model` glob with `*`/`?`,
//! `all: true`). A named device that does not exist is an error; rules only pick devices
//! that are available now — plus, when the rule says `wipe: true`, devices whose only
//! problem is leftover signatures. Sizes: plain bytes, or `K/M/G/T/P` (decimal) or
//! `Ki/Mi/Gi/Ti/Pi` (binary), optionally followed by `B`.

use serde::Deserialize;
use serde_json::Value;

use rookery_proto::DeviceClass;

/// The inventory variable holding the device list.
pub const VAR: &str = "rookery_devices";

/// One entry of `rookery_devices`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub wwn: Option<String>,
    #[serde(default)]
    pub class: Option<ClassSpec>,
    /// `"100Gi..2Ti"`, `"100Gi.."`, `"..2Ti"`.
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub min_size: Option<SizeValue>,
    #[serde(default)]
    pub max_size: Option<SizeValue>,
    /// Glob over the device model (`*`, `?`; case-insensitive).
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub all: bool,
    /// This device may be wiped when it carries signatures (still needs `--wipe` or an
    /// interactive confirmation).
    #[serde(default)]
    pub wipe: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassSpec {
    Nvme,
    Ssd,
    Hdd,
}

impl From<ClassSpec> for DeviceClass {
    fn from(c: ClassSpec) -> Self {
        match c {
            ClassSpec::Nvme => DeviceClass::Nvme,
            ClassSpec::Ssd => DeviceClass::Ssd,
            ClassSpec::Hdd => DeviceClass::Hdd,
        }
    }
}

/// A size written as a number of bytes or a string with a unit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SizeValue {
    Bytes(u64),
    Text(String),
}

impl SizeValue {
    pub fn bytes(&self) -> Result<u64, String> {
        match self {
            SizeValue::Bytes(b) => Ok(*b),
            SizeValue::Text(t) => parse_size(t),
        }
    }
}

/// What an entry selects, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Name(String),
    Serial(String),
    Wwn(String),
    Rules(Rules),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub class: Option<DeviceClass>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    pub model: Option<String>,
    pub all: bool,
}

/// A validated entry: what it selects, whether it allows wiping, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub selector: Selector,
    pub wipe: bool,
    /// `rookery_devices[2]`, for messages.
    pub origin: String,
}

impl Selection {
    /// Short human description: `name /dev/sdb`, `class=nvme size=100Gi..`.
    pub fn describe(&self) -> String {
        match &self.selector {
            Selector::Name(n) => format!("name {n}"),
            Selector::Serial(s) => format!("serial {s}"),
            Selector::Wwn(w) => format!("wwn {w}"),
            Selector::Rules(r) => {
                let mut parts = Vec::new();
                if r.all {
                    parts.push("all".to_string());
                }
                if let Some(c) = r.class {
                    parts.push(format!("class={c}"));
                }
                if r.min_size.is_some() || r.max_size.is_some() {
                    parts.push(format!(
                        "size={}..{}",
                        r.min_size.map(fmt_size).unwrap_or_default(),
                        r.max_size.map(fmt_size).unwrap_or_default()
                    ));
                }
                if let Some(m) = &r.model {
                    parts.push(format!("model={m}"));
                }
                parts.join(" ")
            }
        }
    }
}

/// Why the `rookery_devices` value of a host is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("host {host}: {VAR} must be a list of device entries")]
    NotAList { host: String },
    #[error("host {host}: {VAR}[{index}]: {message}")]
    Entry {
        host: String,
        index: usize,
        message: String,
    },
}

/// Parses a size: `1073741824`, `100Gi`, `2TiB`, `500G`, `1.5Ti`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let unit = unit.strip_suffix(['B', 'b']).unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "K" | "k" => 1000,
        "M" => 1000u64.pow(2),
        "G" => 1000u64.pow(3),
        "T" => 1000u64.pow(4),
        "P" => 1000u64.pow(5),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (use Ki/Mi/Gi/Ti or K/M/G/T)"
            ));
        }
    };
    if num.is_empty() {
        return Err(format!("{text:?} is not a size"));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("size {text:?} is too large"));
    }
    let f: f64 = num.parse().map_err(|_| format!("{text:?} is not a size"))?;
    let v = f * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("size {text:?} is out of range"));
    }
    Ok(v as u64)
}

/// `"100Gi..2Ti"` → (Some, Some); either side may be empty.
pub fn parse_range(text: &str) -> Result<(Option<u64>, Option<u64>), String> {
    let Some((a, b)) = text.split_once("..") else {
        return Err(format!(
            "size {text:?} must be a range MIN..MAX (either side may be empty); use min_size for a single bound"
        ));
    };
    let lo = (!a.trim().is_empty()).then(|| parse_size(a)).transpose()?;
    let hi = (!b.trim().is_empty()).then(|| parse_size(b)).transpose()?;
    if let (Some(l), Some(h)) = (lo, hi)
        && l > h
    {
        return Err(format!("size range {text:?} is empty (min > max)"));
    }
    Ok((lo, hi))
}

/// Binary-unit size for messages (`100Gi`), exact when possible.
pub fn fmt_size(n: u64) -> String {
    for (unit, shift) in [("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        let m = 1u64 << shift;
        if n >= m && n.is_multiple_of(m) {
            return format!("{}{unit}", n / m);
        }
    }
    n.to_string()
}

/// Case-insensitive glob with `*` and `?`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn validate(spec: DeviceSpec, host: &str, index: usize) -> Result<Selection, SpecError> {
    let err = |message: String| SpecError::Entry {
        host: host.to_string(),
        index,
        message,
    };
    let named: Vec<Selector> = [
        spec.name.clone().map(Selector::Name),
        spec.serial.clone().map(Selector::Serial),
        spec.wwn.clone().map(Selector::Wwn),
    ]
    .into_iter()
    .flatten()
    .collect();
    let has_rules = spec.class.is_some()
        || spec.size.is_some()
        || spec.min_size.is_some()
        || spec.max_size.is_some()
        || spec.model.is_some()
        || spec.all;
    let selector = match (named.len(), has_rules) {
        (0, false) => {
            return Err(err(
                "names no device: give name, serial or wwn, or rules (class, size, min_size, max_size, model, all)".into(),
            ));
        }
        (1, false) => {
            let s = named
                .into_iter()
                .next()
                .ok_or_else(|| err("internal".into()))?;
            match &s {
                Selector::Name(n) | Selector::Serial(n) | Selector::Wwn(n)
                    if n.trim().is_empty() =>
                {
                    return Err(err("empty device name".into()));
                }
                _ => {}
            }
            s
        }
        (n, _) if n > 1 => {
            return Err(err(
                "give only one of name, serial, wwn per entry (each names one device)".into(),
            ));
        }
        _ if named.len() == 1 => {
            return Err(err(
                "an entry either names one device (name/serial/wwn) or gives rules, not both"
                    .into(),
            ));
        }
        _ => {
            let mut r = Rules {
                class: spec.class.map(Into::into),
                model: spec.model.clone(),
                all: spec.all,
                ..Rules::default()
            };
            if let Some(s) = &spec.size {
                let (lo, hi) = parse_range(s).map_err(|m| err(format!("size: {m}")))?;
                r.min_size = lo;
                r.max_size = hi;
            }
            if let Some(v) = &spec.min_size {
                r.min_size = Some(v.bytes().map_err(|m| err(format!("min_size: {m}")))?);
            }
            if let Some(v) = &spec.max_size {
                r.max_size = Some(v.bytes().map_err(|m| err(format!("max_size: {m}")))?);
            }
            if let (Some(l), Some(h)) = (r.min_size, r.max_size)
                && l > h
            {
                return Err(err(format!(
                    "min size {} is larger than max size {}",
                    fmt_size(l),
                    fmt_size(h)
                )));
            }
            Selector::Rules(r)
        }
    };
    Ok(Selection {
        selector,
        wipe: spec.wipe,
        origin: format!("{VAR}[{index}]"),
    })
}

/// Reads the `rookery_devices` variable of one host (`None` or absent → no devices).
pub fn parse_host_specs(host: &str, value: Option<&Value>) -> Result<Vec<Selection>, SpecError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    if value.is_null() {
        return Ok(Vec::new());
    }
    let Some(list) = value.as_array() else {
        return Err(SpecError::NotAList {
            host: host.to_string(),
        });
    };
    list.iter()
        .enumerate()
        .map(|(i, v)| {
            let spec: DeviceSpec =
                serde_json::from_value(v.clone()).map_err(|e| SpecError::Entry {
                    host: host.to_string(),
                    index: i,
                    message: e.to_string(),
                })?;
            validate(spec, host, i)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100Gi"), Ok(100 << 30));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("500G"), Ok(500_000_000_000));
        assert_eq!(parse_size("1.5Ti"), Ok(3 << 39));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("Gi").is_err());
        assert_eq!(
            parse_range("100Gi..2Ti"),
            Ok((Some(100 << 30), Some(2 << 40)))
        );
        assert_eq!(parse_range("..2Ti"), Ok((None, Some(2 << 40))));
        assert_eq!(parse_range("100Gi.."), Ok((Some(100 << 30), None)));
        assert!(parse_range("2Ti..100Gi").is_err());
        assert!(parse_range("100Gi").is_err());
        assert_eq!(fmt_size(100 << 30), "100Gi");
    }

    #[test]
    fn globs() {
        assert!(glob_match("Samsung SSD 8*", "SAMSUNG SSD 870 EVO"));
        assert!(glob_match("*EVO", "Samsung SSD 870 EVO"));
        assert!(glob_match("ST?000NM*", "ST4000NM0035"));
        assert!(!glob_match("ST?000NM*", "ST14000NM0035"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn entries() {
        let v = json!([
            {"name": "/dev/sdb", "wipe": true},
            {"serial": "S3Z9"},
            {"class": "nvme", "size": "100Gi..2Ti"},
            {"all": true},
        ]);
        let s = parse_host_specs("n1", Some(&v)).unwrap();
        assert_eq!(s[0].selector, Selector::Name("/dev/sdb".into()));
        assert!(s[0].wipe);
        assert!(!s[1].wipe);
        let Selector::Rules(r) = &s[2].selector else {
            panic!()
        };
        assert_eq!(r.class, Some(DeviceClass::Nvme));
        assert_eq!(r.max_size, Some(2 << 40));
        assert_eq!(s[2].describe(), "class=nvme size=100Gi..2Ti");
        assert_eq!(s[3].origin, "rookery_devices[3]");
    }

    #[test]
    fn bad_entries_name_host_and_index() {
        let cases = [
            (json!([{"wipe": true}]), "names no device"),
            (json!([{"name": "sdb", "serial": "x"}]), "only one of"),
            (json!([{"name": "sdb", "class": "ssd"}]), "not both"),
            (json!([{"class": "floppy"}]), "unknown variant"),
            (json!([{"nmae": "sdb"}]), "unknown field"),
            (json!([{"size": "1Ti..1Gi"}]), "empty"),
            (json!({"name": "sdb"}), "must be a list"),
        ];
        for (v, want) in cases {
            let e = parse_host_specs("node7", Some(&v)).unwrap_err().to_string();
            assert!(e.contains("node7"), "{e}");
            assert!(e.contains(want), "{e} should contain {want}");
        }
        let e = parse_host_specs(
            "n",
            Some(&json!([{"all": true}, {"min_size": "5 bananas"}])),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("rookery_devices[1]") && e.contains("min_size"),
            "{e}"
        );
    }
}
