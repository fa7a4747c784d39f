//! Variable names and values: which `ansible_*` names are known (so a misspelt connection
//! variable is an error instead of a silently ignored setting), and secret redaction for
//! anything that prints variables.
//!
//! Precedence (lowest first), as Ansible documents it in "Understanding variable precedence"
//! (docs.ansible.com, playbook_guide/playbooks_variables.html) and implements it in
//! `VariableManager.get_vars` with the default `VARIABLE_PRECEDENCE`:
//! 1. inventory file group vars of `all`,
//! 2. inventory file group vars of the host's other groups, sorted by (depth, `ansible_group_priority`, name),
//!    so a child group overrides its parent,
//! 3. `group_vars/all` files,
//! 4. `group_vars/<group>` files, same order as 2,
//! 5. inventory file host vars,
//! 6. `host_vars/<host>` files.
//!
//! Mappings are replaced, not merged (Ansible's default `hash_behaviour = replace`).

use serde_json::{Map, Value};

/// Connection variables rookery reads (see `connection.rs`).
pub const HONOURED_VARS: &[&str] = &[
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_connection",
    "ansible_become",
    "ansible_become_user",
    "ansible_become_password",
    "ansible_become_pass",
    "ansible_become_method",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_group_priority",
];

/// Other variables Ansible knows; rookery accepts them and says it does not use them.
pub const KNOWN_IGNORED_VARS: &[&str] = &[
    "ansible_ssh_pass",
    "ansible_password",
    "ansible_ssh_password",
    "ansible_sudo",
    "ansible_sudo_user",
    "ansible_sudo_pass",
    "ansible_sudo_password",
    "ansible_become_exe",
    "ansible_become_flags",
    "ansible_ssh_args",
    "ansible_sftp_extra_args",
    "ansible_scp_extra_args",
    "ansible_ssh_pipelining",
    "ansible_pipelining",
    "ansible_ssh_executable",
    "ansible_ssh_timeout",
    "ansible_timeout",
    "ansible_ssh_retries",
    "ansible_ssh_transfer_method",
    "ansible_scp_if_ssh",
    "ansible_ssh_use_tty",
    "ansible_host_key_checking",
    "ansible_ssh_host_key_checking",
    "ansible_python_interpreter",
    "ansible_shell_type",
    "ansible_shell_executable",
    "ansible_remote_tmp",
    "ansible_network_os",
    "ansible_connection_timeout",
    "ansible_command_timeout",
    "ansible_facts",
    "ansible_check_mode",
    "ansible_distribution",
    "ansible_os_family",
];

/// Families of Ansible variables (per connection plugin or interpreter) not worth listing.
const KNOWN_PREFIXES: &[&str] = &[
    "ansible_winrm_",
    "ansible_psrp_",
    "ansible_paramiko_",
    "ansible_docker_",
    "ansible_kubectl_",
    "ansible_httpapi_",
    "ansible_netconf_",
    "ansible_libssh_",
];

/// What a variable name means to rookery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VarCheck {
    /// Not an `ansible_*` name, or one rookery reads.
    Fine,
    /// Ansible knows it; rookery does not use it (reported as a warning).
    Ignored,
    /// An `ansible_*` name Ansible does not know either, close to known ones: a typo.
    Typo(Vec<&'static str>),
}

pub(crate) fn check_var_name(name: &str) -> VarCheck {
    if !name.starts_with("ansible_") || HONOURED_VARS.contains(&name) {
        return VarCheck::Fine;
    }
    if KNOWN_IGNORED_VARS.contains(&name)
        || KNOWN_PREFIXES.iter().any(|p| name.starts_with(p))
        || (name.starts_with("ansible_") && name.ends_with("_interpreter"))
    {
        return VarCheck::Ignored;
    }
    // Compare what follows `ansible_`, so the shared prefix does not make everything "close".
    let suffix = &name["ansible_".len()..];
    let limit = if suffix.chars().count() <= 4 { 1 } else { 2 };
    let mut near: Vec<(usize, &'static str)> = HONOURED_VARS
        .iter()
        .chain(KNOWN_IGNORED_VARS)
        .map(|k| {
            (
                strsim::damerau_levenshtein(suffix, &k["ansible_".len()..]),
                *k,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .collect();
    near.sort();
    let near: Vec<&'static str> = near.into_iter().map(|(_, k)| k).take(3).collect();
    if near.is_empty() {
        VarCheck::Ignored
    } else {
        VarCheck::Typo(near)
    }
}

pub const REDACTED: &str = "<redacted>";

/// Whether a variable name looks like it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.ends_with("_pass")
        || n == "pass"
        || [
            "password",
            "passwd",
            "passphrase",
            "secret",
            "token",
            "private_key_data",
        ]
        .iter()
        .any(|s| n.contains(s))
}

/// A copy of `vars` with secret-looking names (at any depth) and vault-encrypted values
/// replaced by `<redacted>`, for printing.
pub fn redact(vars: &Map<String, Value>) -> Map<String, Value> {
    vars.iter()
        .map(|(k, v)| {
            let v = if is_secret_name(k) && !v.is_null() {
                Value::String(REDACTED.to_owned())
            } else {
                redact_value(v)
            };
            (k.clone(), v)
        })
        .collect()
}

fn redact_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(redact(m)),
        Value::Array(items) => Value::Array(items.iter().map(redact_value).collect()),
        Value::String(s) if s.trim_start().starts_with("$ANSIBLE_VAULT") => {
            Value::String(REDACTED.to_owned())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typos_of_connection_vars_are_caught() {
        assert_eq!(
            check_var_name("ansible_hots"),
            VarCheck::Typo(vec!["ansible_host"])
        );
        assert!(matches!(check_var_name("ansibel_user"), VarCheck::Fine));
        assert!(matches!(check_var_name("ansible_usr"), VarCheck::Typo(_)));
        assert_eq!(check_var_name("ansible_host"), VarCheck::Fine);
        assert_eq!(check_var_name("ceph_role"), VarCheck::Fine);
        assert_eq!(
            check_var_name("ansible_python_interpreter"),
            VarCheck::Ignored
        );
        assert_eq!(check_var_name("ansible_winrm_transport"), VarCheck::Ignored);
        assert_eq!(
            check_var_name("ansible_completely_custom_thing"),
            VarCheck::Ignored
        );
    }

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let vars = json!({
            "ansible_become_pass": "hunter2",
            "ansible_become_password": "hunter2",
            "db": {"admin_password": "x", "port": 5432},
            "api_token": "t",
            "vaulted": "$ANSIBLE_VAULT;1.1;AES256\n6162",
            "user": "ops",
        });
        let out = Value::Object(redact(vars.as_object().unwrap()));
        assert_eq!(
            out,
            json!({
                "ansible_become_pass": REDACTED,
                "ansible_become_password": REDACTED,
                "db": {"admin_password": REDACTED, "port": 5432},
                "api_token": REDACTED,
                "vaulted": REDACTED,
                "user": "ops",
            })
        );
    }
}
