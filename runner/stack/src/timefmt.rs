//! Parsers for the two time formats Velero accepts, so bad values fail at plan time instead
//! of as a Schedule stuck in `FailedValidation`:
//! - Go `time.ParseDuration` strings (`ttl`, `csiSnapshotTimeout`, e.g. `720h0m0s`);
//! - robfig `cron.ParseStandard` schedules (5 fields, `@daily`, `@every 6h`; k8s-facts §7).

use std::time::Duration;

/// Parse a Go duration string. Negative durations are rejected: no TTL or timeout
/// Rookery writes can be negative.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    if body.starts_with('-') {
        return Err(format!("`{s}` is negative"));
    }
    let mut rest = body;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{s}`: missing unit after number (use h, m, s, ms, us, ns)"))?;
        let num = &rest[..num_len];
        if num.is_empty() || num == "." {
            return Err(format!("`{s}`: expected a number before the unit"));
        }
        let value: f64 = num
            .parse()
            .map_err(|_| format!("`{s}`: `{num}` is not a number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos_per = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("`{s}`: missing unit (use h, m, s, ms, us, ns)")),
            other => {
                return Err(format!(
                    "`{s}`: unknown unit `{other}` (Go durations have no days: use e.g. 720h for 30 days)"
                ));
            }
        };
        total += value * nanos_per;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Validate a schedule the way robfig `cron.ParseStandard` does.
pub fn parse_cron(spec: &str) -> Result<(), String> {
    let mut spec = spec.trim();
    if let Some(rest) = spec
        .strip_prefix("CRON_TZ=")
        .or_else(|| spec.strip_prefix("TZ="))
    {
        let (_, after) = rest
            .split_once(' ')
            .ok_or_else(|| "time zone prefix without a schedule".to_string())?;
        spec = after.trim();
    }
    if let Some(d) = spec.strip_prefix('@') {
        if let Some(every) = d.strip_prefix("every ") {
            let dur = parse_go_duration(every.trim())?;
            if dur.is_zero() {
                return Err("`@every` needs a positive duration".into());
            }
            return Ok(());
        }
        return match d {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            other => Err(format!(
                "unknown descriptor `@{other}` (use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>)"
            )),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let specs: [FieldSpec; 5] = [
        ("minute", 0, 59, &[], 0, false),
        ("hour", 0, 23, &[], 0, false),
        ("day-of-month", 1, 31, &[], 0, true),
        ("month", 1, 12, &MONTHS, 1, false),
        ("day-of-week", 0, 6, &DAYS, 0, true),
    ];
    for (field, (name, min, max, names, name_base, question)) in fields.iter().zip(specs) {
        parse_field(field, min, max, names, name_base, question)
            .map_err(|e| format!("{name} field `{field}`: {e}"))?;
    }
    Ok(())
}

/// (name, min, max, value names, number of the first name, accepts `?`).
type FieldSpec = (&'static str, u32, u32, &'static [&'static str], u32, bool);

fn parse_field(
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
    question: bool,
) -> Result<(), String> {
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || (question && range == "?") {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, name_base)?, value(b, names, name_base)?)
        } else {
            let v = value(range, names, name_base)?;
            (v, if step.is_some() { max } else { v })
        };
        if lo < min || hi > max {
            return Err(format!("value out of range {min}-{max}"));
        }
        if lo > hi {
            return Err(format!("range start {lo} is after its end {hi}"));
        }
        if let Some(step) = step {
            let n: u32 = step
                .parse()
                .map_err(|_| format!("step `{step}` is not a number"))?;
            if n == 0 {
                return Err("step must be positive".into());
            }
        }
    }
    Ok(())
}

fn value(s: &str, names: &[&str], name_base: u32) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + name_base);
    }
    s.parse().map_err(|_| format!("`{s}` is not a number"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_go_duration("720h0m0s").unwrap(),
            Duration::from_secs(720 * 3600)
        );
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_go_duration("10m").unwrap(), Duration::from_secs(600));
        assert!(parse_go_duration("30d").is_err());
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("-1h").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn crons() {
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 0 1 jan ?",
            "0 2 * * MON-FRI",
            "@daily",
            "@every 6h",
            "CRON_TZ=UTC 0 1 * * *",
        ] {
            assert!(parse_cron(ok).is_ok(), "{ok}");
        }
        for bad in [
            "0 3 * *",
            "61 * * * *",
            "0 0 * * 7",
            "@sometimes",
            "@every 3d",
            "0 0 5-1 * *",
            "*/0 * * * *",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad}");
        }
    }
}
