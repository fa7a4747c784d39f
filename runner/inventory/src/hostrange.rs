//! Host names as Ansible writes them in inventories: numeric and alphabetic ranges
//! (`web[01:03]`, `db-[a:c]`, `n[0:10:2]`) and an optional `:port` suffix (`host:2222`,
//! `[2001:db8::1]:2222`), following `ansible.inventory.helpers`/`parse_address`.

/// Expand a host pattern into names and the port written after it, if any.
pub(crate) fn parse_host_pattern(pattern: &str) -> Result<(Vec<String>, Option<u16>), String> {
    let (name, port) = split_port(pattern)?;
    Ok((expand(&name)?, port))
}

fn split_port(s: &str) -> Result<(String, Option<u16>), String> {
    // Bracketed IPv6 literal: `[addr]` or `[addr]:port`.
    if let Some(rest) = s.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        let inside = &rest[..end];
        if inside.matches(':').count() >= 2 {
            let after = &rest[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(parse_port(p)?),
                None if after.is_empty() => None,
                None => return Err(format!("unexpected `{after}` after `[{inside}]`")),
            };
            return Ok((inside.to_owned(), port));
        }
    }
    // Colons outside brackets: one means a port, several mean a bare IPv6 address.
    let mut depth = 0usize;
    let mut colons = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    match colons.as_slice() {
        [one] => Ok((s[..*one].to_owned(), Some(parse_port(&s[one + 1..])?))),
        _ => Ok((s.to_owned(), None)),
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    p.parse::<u16>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port `{p}` (expected 1-65535)"))
}

/// The most host names one pattern may expand to. Ansible has no bound; here a typo such as
/// `web[0:99999999999]` (or nested ranges multiplying) must be an error, not an exhausted
/// control machine. A hundred thousand is far beyond any inventory this tool drives.
pub const MAX_HOSTS_PER_PATTERN: usize = 100_000;

/// Expand the first `[a:b(:step)]` range and recurse on the rest.
pub(crate) fn expand(name: &str) -> Result<Vec<String>, String> {
    let names = expand_bounded(name)?;
    if names.len() > MAX_HOSTS_PER_PATTERN {
        return Err(too_many(name));
    }
    Ok(names)
}

fn too_many(name: &str) -> String {
    format!("host range `{name}` expands to more than {MAX_HOSTS_PER_PATTERN} hosts")
}

fn expand_bounded(name: &str) -> Result<Vec<String>, String> {
    let Some(open) = name.find('[') else {
        return Ok(vec![name.to_owned()]);
    };
    let Some(close_rel) = name[open..].find(']') else {
        return Err(format!("unclosed `[` in host range `{name}`"));
    };
    let close = open + close_rel;
    let (head, inner, tail) = (&name[..open], &name[open + 1..close], &name[close + 1..]);
    let parts: Vec<&str> = inner.split(':').collect();
    let (beg, end, step) = match parts.as_slice() {
        [b, e] => (*b, *e, 1usize),
        [b, e, s] => (
            *b,
            *e,
            s.parse::<usize>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("invalid step `{s}` in host range `{name}`"))?,
        ),
        _ => {
            return Err(format!(
                "host range `[{inner}]` in `{name}` must be [begin:end] or [begin:end:step]"
            ));
        }
    };
    let beg = if beg.is_empty() { "0" } else { beg };
    let mut items = Vec::new();
    if let (Ok(b), Ok(e)) = (beg.parse::<u64>(), end.parse::<u64>()) {
        if b > e {
            return Err(format!(
                "host range `[{inner}]` in `{name}` must have begin <= end"
            ));
        }
        let width = if beg.starts_with('0') && beg.len() > 1 {
            if beg.len() != end.len() {
                return Err(format!(
                    "host range `[{inner}]` in `{name}` must use equal-length begin and end"
                ));
            }
            beg.len()
        } else {
            0
        };
        // Counted before anything is allocated; `checked_add` ends the walk at u64::MAX.
        let count = (e - b) / (step as u64) + 1;
        if count > MAX_HOSTS_PER_PATTERN as u64 {
            return Err(too_many(name));
        }
        let mut i = Some(b);
        while let Some(n) = i.filter(|n| *n <= e) {
            items.push(format!("{n:0width$}"));
            i = n.checked_add(step as u64);
        }
    } else {
        let (mut bc, mut ec) = (beg.chars(), end.chars());
        match (bc.next(), bc.next(), ec.next(), ec.next()) {
            (Some(b), None, Some(e), None)
                if b.is_ascii_alphabetic() && e.is_ascii_alphabetic() =>
            {
                if b > e {
                    return Err(format!(
                        "host range `[{inner}]` in `{name}` must have begin <= end"
                    ));
                }
                items.extend((b..=e).step_by(step).map(String::from));
            }
            _ => {
                return Err(format!(
                    "host range `[{inner}]` in `{name}` must be numbers or single letters"
                ));
            }
        }
    }
    let rests = expand_bounded(tail)?;
    if items.len().saturating_mul(rests.len()) > MAX_HOSTS_PER_PATTERN {
        return Err(too_many(name));
    }
    let mut out = Vec::with_capacity(items.len() * rests.len());
    for item in items {
        for rest in &rests {
            out.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(expand("web[01:03]").unwrap(), ["web01", "web02", "web03"]);
        assert_eq!(
            expand("db-[a:c].lan").unwrap(),
            ["db-a.lan", "db-b.lan", "db-c.lan"]
        );
        assert_eq!(expand("n[0:4:2]").unwrap(), ["n0", "n2", "n4"]);
        assert_eq!(
            expand("r[1:2]c[1:2]").unwrap(),
            ["r1c1", "r1c2", "r2c1", "r2c2"]
        );
        assert_eq!(expand("n[:2]").unwrap(), ["n0", "n1", "n2"]);
        assert!(expand("n[3:1]").is_err());
        assert!(expand("n[01:100]").is_err());
    }

    /// `web[0:99999999999]` allocated without bound, and an end of u64::MAX made `i += step`
    /// overflow (a panic in debug, an endless loop in release); nested ranges multiplied.
    #[test]
    fn expansion_is_bounded() {
        let e = expand("web[0:99999999999]").unwrap_err();
        assert!(e.contains("more than 100000 hosts"), "{e}");
        assert!(expand("n[18446744073709551614:18446744073709551615]").is_ok());
        assert_eq!(
            expand("n[18446744073709551615:18446744073709551615:7]").unwrap(),
            ["n18446744073709551615"]
        );
        let e = expand("a[0:999]b[0:999]").unwrap_err();
        assert!(e.contains("more than 100000 hosts"), "{e}");
        assert_eq!(expand("a[0:99]b[0:999]").unwrap().len(), 100_000);
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_host_pattern("h:2222").unwrap(),
            (vec!["h".into()], Some(2222))
        );
        assert_eq!(
            parse_host_pattern("web[1:2]:22").unwrap(),
            (vec!["web1".into(), "web2".into()], Some(22))
        );
        assert_eq!(
            parse_host_pattern("fe80::1").unwrap(),
            (vec!["fe80::1".into()], None)
        );
        assert_eq!(
            parse_host_pattern("[2001:db8::1]:2200").unwrap(),
            (vec!["2001:db8::1".into()], Some(2200))
        );
        assert!(parse_host_pattern("h:99999").is_err());
    }
}
