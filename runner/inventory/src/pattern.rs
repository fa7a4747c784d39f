//! Ansible host patterns (docs.ansible.com "Patterns: targeting hosts and groups"):
//! `all`/`*`, host and group names, globs (`web*`, `*.example.com`), `~regex`, subscripts
//! (`web[0]`, `web[1:3]`, inclusive as in Ansible), unions `a:b` / `a,b`, intersections
//! `a:&b`, exclusions `a:!b`, and `@file` (one pattern per line, e.g. a retry file).
//! Terms are applied as Ansible's `order_patterns` does: unions first, then intersections,
//! then exclusions. Unlike Ansible, a term that names nothing is an error.

use std::collections::HashSet;

use globset::GlobBuilder;
use regex::Regex;

use crate::error::{InventoryError, did_you_mean, near_matches};
use crate::{Host, Inventory};

pub(crate) fn select<'a>(
    inv: &'a Inventory,
    pattern: &str,
) -> Result<Vec<&'a Host>, InventoryError> {
    let terms = split_terms(pattern)?;
    let perr = |message: String| InventoryError::Pattern {
        pattern: pattern.to_owned(),
        message,
    };
    if terms.is_empty() {
        return Err(perr("the pattern is empty".to_owned()));
    }
    let (mut plain, mut and, mut not) = (Vec::new(), Vec::new(), Vec::new());
    for t in &terms {
        if let Some(rest) = t.strip_prefix('&') {
            and.push(rest);
        } else if let Some(rest) = t.strip_prefix('!') {
            not.push(rest);
        } else {
            plain.push(t.as_str());
        }
    }
    if plain.is_empty() {
        plain.push("all");
    }
    let mut selected: Vec<usize> = Vec::new();
    let mut seen = HashSet::new();
    for t in plain {
        for i in match_term(inv, t).map_err(perr)? {
            if seen.insert(i) {
                selected.push(i);
            }
        }
    }
    for t in and {
        let keep: HashSet<usize> = match_term(inv, t).map_err(perr)?.into_iter().collect();
        selected.retain(|i| keep.contains(i));
    }
    for t in not {
        let drop: HashSet<usize> = match_term(inv, t).map_err(perr)?.into_iter().collect();
        selected.retain(|i| !drop.contains(i));
    }
    selected.sort_unstable();
    Ok(selected.into_iter().map(|i| &inv.hosts()[i]).collect())
}

/// Split on `,` and on `:` outside `[...]`; expand `@file` terms. A lone IPv6 address
/// (several colons, hex digits only) is one term.
fn split_terms(pattern: &str) -> Result<Vec<String>, InventoryError> {
    let mut out = Vec::new();
    for piece in pattern.split(',') {
        let piece = piece.trim();
        if piece.is_empty() {
            continue;
        }
        let ipv6 = piece.matches(':').count() >= 2
            && piece
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        let parts: Vec<String> = if ipv6 {
            vec![piece.to_owned()]
        } else {
            let mut parts = Vec::new();
            let mut depth = 0usize;
            let mut cur = String::new();
            for c in piece.chars() {
                match c {
                    '[' => depth += 1,
                    ']' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                if c == ':' && depth == 0 {
                    parts.push(std::mem::take(&mut cur));
                } else {
                    cur.push(c);
                }
            }
            parts.push(cur);
            parts
        };
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            if let Some(file) = p.strip_prefix('@') {
                let text =
                    std::fs::read_to_string(file).map_err(|source| InventoryError::LimitFile {
                        path: file.into(),
                        source,
                    })?;
                out.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned),
                );
            } else {
                out.push(p.to_owned());
            }
        }
    }
    Ok(out)
}

enum Subscript {
    Index(i64),
    Range(usize, Option<usize>),
}

fn split_subscript(term: &str) -> (&str, Option<Subscript>) {
    if term.starts_with('~') || !term.ends_with(']') {
        return (term, None);
    }
    let Some(open) = term.rfind('[') else {
        return (term, None);
    };
    if open == 0 {
        return (term, None);
    }
    let inner = &term[open + 1..term.len() - 1];
    let sub = if let Ok(i) = inner.parse::<i64>() {
        Some(Subscript::Index(i))
    } else if let Some((a, b)) = inner.split_once([':', '-']) {
        let a = if a.is_empty() {
            Some(0)
        } else {
            a.parse().ok()
        };
        let b = if b.is_empty() {
            Some(None)
        } else {
            b.parse().ok().map(Some)
        };
        match (a, b) {
            (Some(a), Some(b)) => Some(Subscript::Range(a, b)),
            _ => None,
        }
    } else {
        None
    };
    match sub {
        Some(s) => (&term[..open], Some(s)),
        None => (term, None),
    }
}

enum Matcher {
    Exact(String),
    Glob(globset::GlobMatcher),
    Regex(Regex),
}

impl Matcher {
    fn new(expr: &str) -> Result<Self, String> {
        if let Some(re) = expr.strip_prefix('~') {
            return Regex::new(&format!("^(?:{re})"))
                .map(Matcher::Regex)
                .map_err(|e| format!("invalid regular expression `{re}`: {e}"));
        }
        if expr.contains(['*', '?', '[']) {
            return GlobBuilder::new(expr)
                .literal_separator(false)
                .build()
                .map(|g| Matcher::Glob(g.compile_matcher()))
                .map_err(|e| format!("invalid glob `{expr}`: {e}"));
        }
        Ok(Matcher::Exact(expr.to_owned()))
    }

    fn is_match(&self, name: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == name,
            Matcher::Glob(g) => g.is_match(name),
            Matcher::Regex(r) => r.is_match(name),
        }
    }
}

/// Indexes (into `inv.hosts()`) of the hosts one term selects.
fn match_term(inv: &Inventory, term: &str) -> Result<Vec<usize>, String> {
    let (expr, sub) = split_subscript(term);
    let index_of = |name: &str| inv.host_position(name);
    let mut found: Vec<usize> = Vec::new();
    if expr == "all" || expr == "*" {
        found.extend(0..inv.hosts().len());
    } else {
        let m = Matcher::new(expr)?;
        let groups: Vec<&str> = inv
            .groups()
            .iter()
            .map(|g| g.name.as_str())
            .filter(|g| m.is_match(g))
            .collect();
        let mut seen = HashSet::new();
        for g in &groups {
            for h in inv.group_hosts(g) {
                if let Some(i) = index_of(&h.name)
                    && seen.insert(i)
                {
                    found.push(i);
                }
            }
        }
        if groups.is_empty() || !matches!(m, Matcher::Exact(_)) {
            for (i, h) in inv.hosts().iter().enumerate() {
                if m.is_match(&h.name) && seen.insert(i) {
                    found.push(i);
                }
            }
        }
        if groups.is_empty() && found.is_empty() {
            let names = inv
                .groups()
                .iter()
                .map(|g| g.name.as_str())
                .chain(inv.hosts().iter().map(|h| h.name.as_str()));
            let near = near_matches(expr, names);
            return Err(format!(
                "no host or group matches `{expr}`{}",
                did_you_mean(&near)
            ));
        }
        found.sort_unstable();
    }
    Ok(match sub {
        None => found,
        Some(Subscript::Index(i)) => {
            let n = found.len() as i64;
            let at = if i < 0 { n + i } else { i };
            if at < 0 || at >= n {
                return Err(format!("`{term}`: index {i} is out of range ({n} hosts)"));
            }
            vec![found[at as usize]]
        }
        Some(Subscript::Range(a, b)) => {
            let end = b.unwrap_or(usize::MAX).min(found.len().saturating_sub(1));
            found
                .get(a..=end)
                .map(<[usize]>::to_vec)
                .unwrap_or_default()
        }
    })
}
