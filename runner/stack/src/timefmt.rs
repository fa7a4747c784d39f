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
    cron_schedule(spec).map(|_| ())
}

/// A parsed schedule: a fixed interval, or the minutes/hours/days/months/weekdays it fires on
/// (bit sets), with robfig's rule that day-of-month and day-of-week are OR-ed only when both
/// are restricted.
enum CronSchedule {
    Every(Duration),
    Fields {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
        dom_any: bool,
        dow_any: bool,
    },
}

fn cron_schedule(spec: &str) -> Result<CronSchedule, String> {
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
            return Ok(CronSchedule::Every(dur));
        }
        let standard = match d {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            other => {
                return Err(format!(
                    "unknown descriptor `@{other}` (use @yearly, @monthly, @weekly, @daily, @hourly or @every <duration>)"
                ));
            }
        };
        return cron_schedule(standard);
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
    let mut sets = [0u64; 5];
    for (i, (field, (name, min, max, names, name_base, question))) in
        fields.iter().zip(specs).enumerate()
    {
        sets[i] = parse_field(field, min, max, names, name_base, question)
            .map_err(|e| format!("{name} field `{field}`: {e}"))?;
    }
    let any = |f: &str| f.starts_with('*') || f.starts_with('?');
    Ok(CronSchedule::Fields {
        minute: sets[0],
        hour: sets[1],
        dom: sets[2],
        month: sets[3],
        dow: sets[4],
        dom_any: any(fields[2]),
        dow_any: any(fields[4]),
    })
}

/// The longest time between two consecutive runs of a schedule (UTC, over two years, so
/// monthly and leap-day schedules are covered). `0 2 * * *` is 24 h, `0 2 * * MON-FRI` 72 h.
pub fn cron_period(spec: &str) -> Result<Duration, String> {
    let (minute, hour, dom, month, dow, dom_any, dow_any) = match cron_schedule(spec)? {
        CronSchedule::Every(d) => return Ok(d),
        CronSchedule::Fields {
            minute,
            hour,
            dom,
            month,
            dow,
            dom_any,
            dow_any,
        } => (minute, hour, dom, month, dow, dom_any, dow_any),
    };
    let bit = |set: u64, v: u32| set & (1u64 << v) != 0;
    // Days since 1970-01-01 of 2025-01-01 (a Wednesday), then 2 years of days.
    const START: i64 = 20089;
    let mut first: Option<i64> = None;
    let mut last: Option<i64> = None;
    let mut longest: i64 = 0;
    for day in START..START + 731 {
        let (_, m, d) = civil_from_days(day);
        let wd = ((day + 4).rem_euclid(7)) as u32; // 1970-01-01 was a Thursday
        let dom_ok = bit(dom, d);
        let dow_ok = bit(dow, wd);
        let day_ok = if dom_any || dow_any {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        };
        if !bit(month, m) || !day_ok {
            continue;
        }
        for h in 0..24 {
            if !bit(hour, h) {
                continue;
            }
            for min in 0..60 {
                if !bit(minute, min) {
                    continue;
                }
                let t = day * 1440 + i64::from(h) * 60 + i64::from(min);
                if let Some(prev) = last {
                    longest = longest.max(t - prev);
                }
                first.get_or_insert(t);
                last = Some(t);
            }
        }
    }
    match (first, last) {
        (Some(f), Some(l)) if f != l => Ok(Duration::from_secs(longest.max(1) as u64 * 60)),
        (Some(_), Some(_)) => Ok(Duration::from_secs(366 * 86400)),
        _ => Err("the schedule never fires (e.g. 30 February)".into()),
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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
) -> Result<u64, String> {
    let mut set = 0u64;
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
        let step = step.and_then(|s| s.parse::<u32>().ok()).unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            set |= 1u64 << v;
            v += step;
        }
    }
    Ok(set)
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
    fn cron_periods() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(cron_period("0 2 * * *").unwrap(), h(24));
        assert_eq!(cron_period("@daily").unwrap(), h(24));
        assert_eq!(
            cron_period("*/15 * * * *").unwrap(),
            Duration::from_secs(900)
        );
        assert_eq!(cron_period("0 2 * * MON-FRI").unwrap(), h(72));
        assert_eq!(cron_period("0 */6 * * *").unwrap(), h(6));
        assert_eq!(cron_period("@every 36h").unwrap(), h(36));
        assert_eq!(cron_period("@weekly").unwrap(), h(7 * 24));
        // 1 January to 1 February.
        assert_eq!(cron_period("0 0 1 * *").unwrap(), h(31 * 24));
        assert_eq!(cron_period("CRON_TZ=UTC 30 1 * * 0").unwrap(), h(7 * 24));
        assert!(cron_period("0 0 30 2 *").is_err());
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
