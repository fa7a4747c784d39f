//! How to reach a host, resolved from its `ansible_*` variables.
//!
//! Variable aliases follow Ansible's plugin option definitions, where the last name listed
//! that is defined wins (`ConfigManager._loop_entries`): `ansible_ssh_host` over
//! `ansible_host`, `ansible_ssh_port` over `ansible_port`, `ansible_ssh_user` over
//! `ansible_user`, `ansible_ssh_private_key_file` over `ansible_private_key_file`,
//! `ansible_become_pass` over `ansible_become_password`.
//!
//! `ansible_ssh_common_args` then `ansible_ssh_extra_args` are shell-split and read like the
//! OpenSSH command line Ansible builds from them: for each `-o` option the first value wins.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

use crate::error::{InventoryError, Location};
use crate::shell;
use crate::vars::REDACTED;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionKind {
    /// SSH (Ansible's `ssh`/`paramiko`/`smart`).
    Ssh,
    /// Run on the control machine without SSH (`ansible_connection: local`).
    Local,
}

/// `StrictHostKeyChecking` as OpenSSH spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    /// `yes`: unknown keys are refused.
    Yes,
    /// `accept-new`: unknown keys are recorded; changed keys still refused.
    AcceptNew,
    /// `no`/`off`: unknown keys accepted (changed keys are still refused by rookery).
    No,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionSpec {
    pub kind: ConnectionKind,
    /// `ansible_host`, defaulting to the inventory name.
    pub address: String,
    /// `ansible_port` / `ansible_ssh_port`; None = ~/.ssh/config or 22.
    pub port: Option<u16>,
    /// `ansible_user` / `ansible_ssh_user`; None = ~/.ssh/config or the local user.
    pub user: Option<String>,
    /// `ansible_ssh_private_key_file`.
    pub private_key_file: Option<PathBuf>,
    /// `-o IdentitiesOnly=yes`.
    pub identities_only: bool,
    /// `-o UserKnownHostsFile=...` (space-separated list allowed).
    pub user_known_hosts_files: Vec<PathBuf>,
    /// `-o StrictHostKeyChecking=...`.
    pub strict_host_key_checking: Option<StrictHostKeyChecking>,
    /// Where the host-key options above came from (`ansible_ssh_common_args at
    /// inv.yaml:4:7`), so a refusal can say which line to change.
    pub host_key_options_origin: Option<String>,
    /// `-o ProxyJump=...` or `-J ...`: `[user@]host[:port]`, comma-separated chain.
    pub proxy_jump: Option<String>,
    /// `ansible_become`.
    pub become_: bool,
    /// `ansible_become_user` (default root).
    pub become_user: Option<String>,
    /// `ansible_become_password` / `ansible_become_pass` (secret: never log it).
    pub become_password: Option<String>,
    /// `-o` options and flags from `ansible_ssh_common_args` / `ansible_ssh_extra_args` that
    /// rookery does not honour, reported to the user as ignored.
    pub ignored_ssh_options: Vec<String>,
}

/// Hand-written so the become password never reaches a log through `{:?}`.
impl fmt::Debug for ConnectionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSpec")
            .field("kind", &self.kind)
            .field("address", &self.address)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("private_key_file", &self.private_key_file)
            .field("identities_only", &self.identities_only)
            .field("user_known_hosts_files", &self.user_known_hosts_files)
            .field("strict_host_key_checking", &self.strict_host_key_checking)
            .field("host_key_options_origin", &self.host_key_options_origin)
            .field("proxy_jump", &self.proxy_jump)
            .field("become_", &self.become_)
            .field("become_user", &self.become_user)
            .field(
                "become_password",
                &self.become_password.as_ref().map(|_| REDACTED),
            )
            .field("ignored_ssh_options", &self.ignored_ssh_options)
            .finish()
    }
}

impl ConnectionSpec {
    /// A JSON view for printing, with the become password replaced by `<redacted>`.
    pub fn to_redacted_json(&self) -> Value {
        json!({
            "kind": match self.kind { ConnectionKind::Ssh => "ssh", ConnectionKind::Local => "local" },
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "private_key_file": self.private_key_file,
            "identities_only": self.identities_only,
            "user_known_hosts_files": self.user_known_hosts_files,
            "strict_host_key_checking": self.strict_host_key_checking.map(|s| match s {
                StrictHostKeyChecking::Yes => "yes",
                StrictHostKeyChecking::AcceptNew => "accept-new",
                StrictHostKeyChecking::No => "no",
            }),
            "proxy_jump": self.proxy_jump,
            "become": self.become_,
            "become_user": self.become_user,
            "become_password": self.become_password.as_ref().map(|_| REDACTED),
            "ignored_ssh_options": self.ignored_ssh_options,
        })
    }

    /// Resolve a host's connection from its (already merged) variables. `origins` locates
    /// each variable for error messages.
    pub fn from_vars(
        host: &str,
        vars: &Map<String, Value>,
        origins: &BTreeMap<String, Location>,
    ) -> Result<ConnectionSpec, InventoryError> {
        let r = Reader {
            host,
            vars,
            origins,
        };
        let kind = match r.string(&["ansible_connection"])? {
            None => ConnectionKind::Ssh,
            Some((v, name)) => match v.strip_prefix("ansible.builtin.").unwrap_or(&v) {
                "ssh" | "smart" | "paramiko" | "paramiko_ssh" => ConnectionKind::Ssh,
                "local" => ConnectionKind::Local,
                other => {
                    return Err(r.err(
                        name,
                        format!("{name}: connection `{other}` is not supported (rookery supports `ssh` and `local`)"),
                    ));
                }
            },
        };
        let address = r
            .string(&["ansible_host", "ansible_ssh_host"])?
            .map(|(v, _)| v)
            .unwrap_or_else(|| host.to_owned());
        let port = match r.get(&["ansible_port", "ansible_ssh_port"]) {
            None => None,
            Some((v, name)) => {
                r.no_template(name, v)?;
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                Some(
                    n.and_then(|n| u16::try_from(n).ok())
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            r.err(
                                name,
                                format!("{name}: `{}` is not a port number (1-65535)", show(v)),
                            )
                        })?,
                )
            }
        };
        let user = r
            .string(&["ansible_user", "ansible_ssh_user"])?
            .map(|(v, _)| v);
        let private_key_file = r
            .string(&["ansible_private_key_file", "ansible_ssh_private_key_file"])?
            .map(|(v, _)| expand_tilde(&v));
        let become_ = match r.get(&["ansible_become"]) {
            None => false,
            Some((v, name)) => {
                r.no_template(name, v)?;
                ansible_bool(v).ok_or_else(|| {
                    r.err(
                        name,
                        format!(
                            "{name}: `{}` is not a boolean (use true/false or yes/no)",
                            show(v)
                        ),
                    )
                })?
            }
        };
        if let Some((m, name)) = r.string(&["ansible_become_method"])?
            && m != "sudo"
            && m != "ansible.builtin.sudo"
        {
            return Err(r.err(
                name,
                format!("{name}: become method `{m}` is not supported (rookery uses sudo)"),
            ));
        }
        let become_user = r.string(&["ansible_become_user"])?.map(|(v, _)| v);
        let become_password = r.secret(&["ansible_become_password", "ansible_become_pass"])?;

        let mut spec = ConnectionSpec {
            kind,
            address,
            port,
            user,
            private_key_file,
            identities_only: false,
            user_known_hosts_files: Vec::new(),
            strict_host_key_checking: None,
            host_key_options_origin: None,
            proxy_jump: None,
            become_,
            become_user,
            become_password,
            ignored_ssh_options: Vec::new(),
        };
        let mut seen = SshSeen::default();
        for name in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            if let Some((args, name)) = r.string(&[name])? {
                let before = (seen.strict, seen.known_hosts);
                apply_ssh_args(&mut spec, &mut seen, &args)
                    .map_err(|m| r.err(name, format!("{name}: {m}")))?;
                if (seen.strict, seen.known_hosts) != before
                    && spec.host_key_options_origin.is_none()
                {
                    spec.host_key_options_origin = Some(match r.origins.get(name) {
                        Some(loc) => format!("{name} at {loc}"),
                        None => format!("{name} of host `{host}`"),
                    });
                }
            }
        }
        Ok(spec)
    }
}

struct Reader<'a> {
    host: &'a str,
    vars: &'a Map<String, Value>,
    origins: &'a BTreeMap<String, Location>,
}

impl<'a> Reader<'a> {
    /// The last of `names` that is set (Ansible's alias rule); null counts as unset.
    fn get(&self, names: &[&'static str]) -> Option<(&'a Value, &'static str)> {
        names
            .iter()
            .rev()
            .find_map(|n| self.vars.get(*n).filter(|v| !v.is_null()).map(|v| (v, *n)))
    }

    fn err(&self, var: &str, message: String) -> InventoryError {
        InventoryError::Connection {
            host: self.host.to_owned(),
            location: self.origins.get(var).cloned(),
            message,
        }
    }

    fn no_template(&self, name: &str, v: &Value) -> Result<(), InventoryError> {
        if let Value::String(s) = v {
            if s.contains("{{") || s.contains("{%") {
                return Err(self.err(
                    name,
                    format!("{name}: templated connection variables (`{{{{ ... }}}}`) are not supported yet; write the value literally"),
                ));
            }
            if s.trim_start().starts_with("$ANSIBLE_VAULT") {
                return Err(self.err(
                    name,
                    format!("{name}: vault-encrypted values are not supported yet"),
                ));
            }
        }
        Ok(())
    }

    fn string(
        &self,
        names: &[&'static str],
    ) -> Result<Option<(String, &'static str)>, InventoryError> {
        let Some((v, name)) = self.get(names) else {
            return Ok(None);
        };
        self.no_template(name, v)?;
        match v {
            Value::String(s) => Ok(Some((s.clone(), name))),
            Value::Number(n) => Ok(Some((n.to_string(), name))),
            other => Err(self.err(
                name,
                format!("{name}: expected a string, found `{}`", show(other)),
            )),
        }
    }

    /// Like `string`, but the value never appears in an error.
    fn secret(&self, names: &[&'static str]) -> Result<Option<String>, InventoryError> {
        let Some((v, name)) = self.get(names) else {
            return Ok(None);
        };
        if let Value::String(s) = v {
            if s.contains("{{") || s.trim_start().starts_with("$ANSIBLE_VAULT") {
                return Err(self.err(
                    name,
                    format!("{name}: templated or vault-encrypted passwords are not supported yet; use --ask-become-pass"),
                ));
            }
            return Ok(Some(s.clone()));
        }
        match v {
            Value::Number(n) => Ok(Some(n.to_string())),
            _ => Err(self.err(name, format!("{name}: expected a string"))),
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Ansible's `boolean()` filter: yes/no, on/off, true/false, 1/0, y/n, t/f.
fn ansible_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn expand_tilde(p: &str) -> PathBuf {
    if (p == "~" || p.starts_with("~/"))
        && let Some(home) = std::env::var_os("HOME")
    {
        let mut out = PathBuf::from(home);
        if let Some(rest) = p.strip_prefix("~/") {
            out.push(rest);
        }
        return out;
    }
    PathBuf::from(p)
}

#[derive(Default)]
struct SshSeen {
    known_hosts: bool,
    strict: bool,
    identities_only: bool,
    proxy: bool,
}

/// OpenSSH client flags that take an argument (from `ssh(1)` SYNOPSIS).
const FLAGS_WITH_ARG: &str = "BbcDEeFIiJLlmOoPpQRSWw";

fn apply_ssh_args(spec: &mut ConnectionSpec, seen: &mut SshSeen, args: &str) -> Result<(), String> {
    let words: Vec<String> = shell::split(args, false)?
        .into_iter()
        .map(|w| w.text)
        .collect();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        let Some(flags) = w.strip_prefix('-').filter(|f| !f.is_empty()) else {
            spec.ignored_ssh_options.push(w.clone());
            continue;
        };
        let flag = flags.chars().next().unwrap_or('-');
        if !FLAGS_WITH_ARG.contains(flag) {
            spec.ignored_ssh_options.push(w.clone());
            continue;
        }
        let arg = if flags.len() > 1 {
            flags[flag.len_utf8()..].to_owned()
        } else if i < words.len() {
            i += 1;
            words[i - 1].clone()
        } else {
            return Err(format!("`-{flag}` needs a value"));
        };
        match flag {
            'o' => apply_option(spec, seen, &arg)?,
            'J' => set_proxy(spec, seen, &arg),
            _ => spec.ignored_ssh_options.push(format!("-{flag} {arg}")),
        }
    }
    Ok(())
}

fn set_proxy(spec: &mut ConnectionSpec, seen: &mut SshSeen, jump: &str) {
    if !seen.proxy {
        seen.proxy = true;
        spec.proxy_jump = (!jump.eq_ignore_ascii_case("none")).then(|| jump.to_owned());
    }
}

fn yes_no(key: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("-o {key}: expected yes or no, found `{v}`")),
    }
}

fn apply_option(spec: &mut ConnectionSpec, seen: &mut SshSeen, opt: &str) -> Result<(), String> {
    let opt = opt.trim();
    let (key, value) = match opt.find(['=', ' ', '\t']) {
        Some(pos) => (
            &opt[..pos],
            opt[pos + 1..].trim_start_matches(['=', ' ', '\t']).trim(),
        ),
        None => return Err(format!("-o {opt}: expected Option=value")),
    };
    match key.to_ascii_lowercase().as_str() {
        "userknownhostsfile" => {
            if !seen.known_hosts {
                seen.known_hosts = true;
                spec.user_known_hosts_files =
                    value.split_whitespace().map(expand_tilde).collect();
            }
        }
        "stricthostkeychecking" => {
            let v = match value.to_ascii_lowercase().as_str() {
                "yes" | "true" | "ask" => StrictHostKeyChecking::Yes,
                "accept-new" => StrictHostKeyChecking::AcceptNew,
                "no" | "off" | "false" => StrictHostKeyChecking::No,
                _ => {
                    return Err(format!(
                        "-o StrictHostKeyChecking: expected yes, no, accept-new or ask, found `{value}`"
                    ));
                }
            };
            if !seen.strict {
                seen.strict = true;
                spec.strict_host_key_checking = Some(v);
            }
        }
        "identitiesonly" => {
            let v = yes_no(key, value)?;
            if !seen.identities_only {
                seen.identities_only = true;
                spec.identities_only = v;
            }
        }
        "proxyjump" => set_proxy(spec, seen, value),
        "proxycommand" => match proxy_command_as_jump(value) {
            Some(jump) => set_proxy(spec, seen, &jump),
            None if value.eq_ignore_ascii_case("none") => set_proxy(spec, seen, "none"),
            None => spec.ignored_ssh_options.push(format!(
                "-o ProxyCommand={value} (only `ssh -W %h:%p [-q] [-p port] [user@]jumphost` is understood)"
            )),
        },
        _ => spec.ignored_ssh_options.push(format!("-o {key}={value}")),
    }
    Ok(())
}

/// `ssh [-q] -W %h:%p [-p port] [-l user] [user@]bastion` is exactly what `ProxyJump` does;
/// anything else (netcat, other options) cannot be reproduced faithfully.
fn proxy_command_as_jump(cmd: &str) -> Option<String> {
    let words: Vec<String> = shell::split(cmd, false)
        .ok()?
        .into_iter()
        .map(|w| w.text)
        .collect();
    let mut it = words.iter();
    let prog = it.next()?;
    if prog != "ssh" && !prog.ends_with("/ssh") {
        return None;
    }
    let (mut forward, mut port, mut user, mut host) = (false, None, None, None);
    while let Some(w) = it.next() {
        match w.as_str() {
            "-q" => {}
            "-W" => forward = it.next()? == "%h:%p",
            "-p" => port = Some(it.next()?.parse::<u16>().ok()?),
            "-l" => user = Some(it.next()?.clone()),
            w if !w.starts_with('-') && host.is_none() => host = Some(w.to_owned()),
            _ => return None,
        }
    }
    let host = host?;
    if !forward {
        return None;
    }
    let mut jump = String::new();
    if let Some(u) = user.filter(|_| !host.contains('@')) {
        jump.push_str(&u);
        jump.push('@');
    }
    jump.push_str(&host);
    if let Some(p) = port {
        jump.push_str(&format!(":{p}"));
    }
    Some(jump)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: &str) -> ConnectionSpec {
        let mut vars = Map::new();
        vars.insert("ansible_ssh_common_args".into(), Value::String(args.into()));
        ConnectionSpec::from_vars("h", &vars, &BTreeMap::new()).unwrap()
    }

    #[test]
    fn ssh_options_honoured_and_ignored() {
        let s = spec(
            "-o UserKnownHostsFile='/tmp/a /tmp/b' -oStrictHostKeyChecking=accept-new \
             -o IdentitiesOnly=yes -o ControlMaster=auto -C -i /k -J ops@bastion:2222",
        );
        assert_eq!(
            s.user_known_hosts_files,
            vec![PathBuf::from("/tmp/a"), PathBuf::from("/tmp/b")]
        );
        assert_eq!(
            s.strict_host_key_checking,
            Some(StrictHostKeyChecking::AcceptNew)
        );
        assert!(s.identities_only);
        assert_eq!(s.proxy_jump.as_deref(), Some("ops@bastion:2222"));
        assert_eq!(
            s.ignored_ssh_options,
            vec!["-o ControlMaster=auto", "-C", "-i /k"]
        );
    }

    #[test]
    fn first_value_wins_like_openssh() {
        let s =
            spec("-o StrictHostKeyChecking=no -o StrictHostKeyChecking=yes -o ProxyJump=a -J b");
        assert_eq!(s.strict_host_key_checking, Some(StrictHostKeyChecking::No));
        assert_eq!(s.proxy_jump.as_deref(), Some("a"));
        assert_eq!(
            spec("-o StrictHostKeyChecking=ask").strict_host_key_checking,
            Some(StrictHostKeyChecking::Yes)
        );
    }

    #[test]
    fn proxy_command_of_jump_shape() {
        let s = spec(r#"-o ProxyCommand="ssh -W %h:%p -q ops@bastion""#);
        assert_eq!(s.proxy_jump.as_deref(), Some("ops@bastion"));
        let s = spec(r#"-o 'ProxyCommand=ssh -q -p 2200 -l ops -W %h:%p bastion'"#);
        assert_eq!(s.proxy_jump.as_deref(), Some("ops@bastion:2200"));
        let s = spec(r#"-o ProxyCommand="nc -X 5 -x proxy:1080 %h %p""#);
        assert_eq!(s.proxy_jump, None);
        assert_eq!(s.ignored_ssh_options.len(), 1);
        assert!(s.ignored_ssh_options[0].starts_with("-o ProxyCommand=nc"));
    }

    #[test]
    fn debug_hides_password() {
        let mut vars = Map::new();
        vars.insert(
            "ansible_become_pass".into(),
            Value::String("hunter2".into()),
        );
        let s = ConnectionSpec::from_vars("h", &vars, &BTreeMap::new()).unwrap();
        assert_eq!(s.become_password.as_deref(), Some("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!s.to_redacted_json().to_string().contains("hunter2"));
    }
}
