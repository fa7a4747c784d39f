//! The subset of OpenSSH's client config (`~/.ssh/config`) that decides where and how rookery
//! connects: Host blocks (wildcards, negation), HostName, User, Port, IdentityFile,
//! IdentitiesOnly, UserKnownHostsFile, GlobalKnownHostsFile, StrictHostKeyChecking,
//! ProxyJump, and Include. As in OpenSSH the first value found wins (except
//! IdentityFile, which accumulates). `Match` blocks are not evaluated: they are skipped with
//! a debug log, so they never apply settings the user did not ask for.

use std::path::{Path, PathBuf};

use rookery_inventory::StrictHostKeyChecking;

#[derive(Debug, Default, Clone)]
pub(crate) struct SshConfig {
    blocks: Vec<Block>,
}

#[derive(Debug, Default, Clone)]
struct Block {
    /// None = options before the first Host line (apply to every host).
    patterns: Option<Vec<String>>,
    /// A `Match` block: never applied.
    is_match: bool,
    /// (lower-case key, arguments, `file:line` it came from)
    options: Vec<(String, Vec<String>, String)>,
}

/// Settings resolved for one host alias.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<String>,
    pub identities_only: Option<bool>,
    pub user_known_hosts_files: Vec<String>,
    pub global_known_hosts_files: Vec<String>,
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    /// `file:line` of the StrictHostKeyChecking / UserKnownHostsFile that applied.
    pub strict_origin: Option<String>,
    pub user_known_hosts_origin: Option<String>,
    pub proxy_jump: Option<String>,
}

/// Glob match with `*` and `?` (OpenSSH `match_pattern`), case-insensitive like host names.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    fn inner(p: &[u8], t: &[u8]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some(b'*') => (0..=t.len()).any(|i| inner(&p[1..], &t[i..])),
            Some(b'?') => !t.is_empty() && inner(&p[1..], &t[1..]),
            Some(c) => {
                t.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && inner(&p[1..], &t[1..])
            }
        }
    }
    inner(pattern.as_bytes(), text.as_bytes())
}

/// A comma- or space-separated pattern list with `!negation`: true when some positive
/// pattern matches and no negated one does.
pub(crate) fn pattern_list_match<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
    text: &str,
) -> bool {
    let mut matched = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if glob_match(neg, text) {
                return false;
            }
        } else if glob_match(p, text) {
            matched = true;
        }
    }
    matched
}

/// Split a config line into arguments, honouring double quotes.
fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has = false;
    for c in s.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `~/...` and `~` to the home directory.
pub(crate) fn expand_tilde(p: &str) -> PathBuf {
    if p == "~" {
        return home_dir().unwrap_or_else(|| PathBuf::from("~"));
    }
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(h) = home_dir()
    {
        return h.join(rest);
    }
    PathBuf::from(p)
}

impl SshConfig {
    /// Read `path`; a missing file is an empty config.
    pub(crate) fn load(path: &Path) -> std::io::Result<Self> {
        let mut cfg = SshConfig::default();
        cfg.read_file(path, 0)?;
        Ok(cfg)
    }

    fn read_file(&mut self, path: &Path, depth: usize) -> std::io::Result<()> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        self.parse_into(&text, &path.display().to_string(), depth);
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn parse(text: &str) -> Self {
        let mut cfg = SshConfig::default();
        cfg.parse_into(text, "ssh_config", 0);
        cfg
    }

    fn parse_into(&mut self, text: &str, file: &str, depth: usize) {
        if self.blocks.is_empty() {
            self.blocks.push(Block::default());
        }
        for (no, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, rest) = match line.find(|c: char| c.is_whitespace() || c == '=') {
                Some(i) => (
                    &line[..i],
                    line[i..].trim_start_matches(|c: char| c.is_whitespace() || c == '='),
                ),
                None => (line, ""),
            };
            let key = key.to_ascii_lowercase();
            let args = split_args(rest);
            match key.as_str() {
                "host" => self.blocks.push(Block {
                    patterns: Some(args),
                    is_match: false,
                    options: vec![],
                }),
                "match" => {
                    tracing::debug!(
                        "ssh config: `Match` blocks are not supported; skipped: {line}"
                    );
                    self.blocks.push(Block {
                        patterns: None,
                        is_match: true,
                        options: vec![],
                    });
                }
                "include" if depth < 8 => {
                    for a in args {
                        for p in include_paths(&a) {
                            // Unreadable includes are ignored like OpenSSH ignores missing ones.
                            let _ = self.read_file(&p, depth + 1);
                        }
                    }
                }
                _ => {
                    if let Some(b) = self.blocks.last_mut() {
                        b.options.push((key, args, format!("{file}:{}", no + 1)));
                    }
                }
            }
        }
    }

    /// Settings for `alias` (the inventory address).
    pub(crate) fn resolve(&self, alias: &str) -> HostConfig {
        let mut hc = HostConfig::default();
        for b in &self.blocks {
            if b.is_match {
                continue;
            }
            if let Some(pats) = &b.patterns
                && !pattern_list_match(pats.iter().map(String::as_str), alias)
            {
                continue;
            }
            for (key, args, origin) in &b.options {
                let first = args.first().cloned();
                match key.as_str() {
                    "hostname" => set(&mut hc.hostname, first.map(|h| h.replace("%h", alias))),
                    "user" => set(&mut hc.user, first),
                    "port" => set(&mut hc.port, first.and_then(|p| p.parse().ok())),
                    "identityfile" => {
                        if let Some(f) = first
                            && !f.eq_ignore_ascii_case("none")
                        {
                            hc.identity_files.push(f);
                        }
                    }
                    "identitiesonly" => set(&mut hc.identities_only, first.map(|v| yes(&v))),
                    "userknownhostsfile" if hc.user_known_hosts_files.is_empty() => {
                        hc.user_known_hosts_files = args.clone();
                        hc.user_known_hosts_origin = Some(origin.clone());
                    }
                    "globalknownhostsfile" if hc.global_known_hosts_files.is_empty() => {
                        hc.global_known_hosts_files = args.clone();
                    }
                    "stricthostkeychecking" if hc.strict_host_key_checking.is_none() => {
                        hc.strict_host_key_checking =
                            first.and_then(|v| match v.to_ascii_lowercase().as_str() {
                                "yes" | "ask" => Some(StrictHostKeyChecking::Yes),
                                "accept-new" => Some(StrictHostKeyChecking::AcceptNew),
                                "no" | "off" => Some(StrictHostKeyChecking::No),
                                _ => None,
                            });
                        hc.strict_origin = Some(origin.clone());
                    }
                    "proxyjump" => set(&mut hc.proxy_jump, first),
                    _ => {}
                }
            }
        }
        if hc
            .proxy_jump
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("none"))
        {
            hc.proxy_jump = None;
        }
        hc
    }
}

fn set<T>(slot: &mut Option<T>, v: Option<T>) {
    if slot.is_none() {
        *slot = v;
    }
}

fn yes(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on")
}

/// Include paths: relative ones are under ~/.ssh; `*` in the file name is expanded.
fn include_paths(arg: &str) -> Vec<PathBuf> {
    let p = expand_tilde(arg);
    let p = if p.is_relative() {
        home_dir().map(|h| h.join(".ssh").join(&p)).unwrap_or(p)
    } else {
        p
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if !name.contains('*') && !name.contains('?') {
        return vec![p];
    }
    let Some(dir) = p.parent() else { return vec![] };
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| glob_match(&name, &e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// OpenSSH `%` tokens in IdentityFile / UserKnownHostsFile, then `~`.
pub(crate) fn expand_tokens(s: &str, host: &str, user: &str, port: u16) -> PathBuf {
    let local_user = std::env::var("USER").unwrap_or_default();
    let home = home_dir()
        .map(|h| h.display().to_string())
        .unwrap_or_default();
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&home),
            Some('u') => out.push_str(&local_user),
            Some('h') => out.push_str(host),
            Some('r') => out.push_str(user),
            Some('p') => out.push_str(&port.to_string()),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    expand_tilde(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_and_wildcards() {
        let cfg = SshConfig::parse(
            "# comment\n\
             Host web-* !web-bad\n  HostName %h.example.com\n  User deploy\n  Port 2200\n  IdentityFile ~/.ssh/web\n\
             Host *\n  User nobody\n  IdentityFile ~/.ssh/id_x\n  StrictHostKeyChecking accept-new\n  ProxyJump none\n\
             Match host foo\n  User never\n",
        );
        let h = cfg.resolve("web-1");
        assert_eq!(h.hostname.as_deref(), Some("web-1.example.com"));
        assert_eq!(h.user.as_deref(), Some("deploy"));
        assert_eq!(h.port, Some(2200));
        assert_eq!(h.identity_files, vec!["~/.ssh/web", "~/.ssh/id_x"]);
        assert_eq!(
            h.strict_host_key_checking,
            Some(StrictHostKeyChecking::AcceptNew)
        );
        assert_eq!(h.proxy_jump, None);
        let bad = cfg.resolve("web-bad");
        assert_eq!(bad.user.as_deref(), Some("nobody"));
        assert_eq!(bad.hostname, None);
    }

    #[test]
    fn equals_and_quotes() {
        let cfg = SshConfig::parse("Host a\nUser=bob\nUserKnownHostsFile \"/tmp/k h\" /tmp/k2\n");
        let h = cfg.resolve("a");
        assert_eq!(h.user.as_deref(), Some("bob"));
        assert_eq!(h.user_known_hosts_files, vec!["/tmp/k h", "/tmp/k2"]);
    }

    #[test]
    fn tokens() {
        assert_eq!(
            expand_tokens("/k/%h-%r-%p%%", "h1", "u", 22),
            PathBuf::from("/k/h1-u-22%")
        );
    }
}
