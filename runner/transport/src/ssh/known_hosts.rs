//! Host-key checking against OpenSSH known_hosts files. russh's own helper ignores markers,
//! wildcards and negation and compares keys including their comment, so this is a small
//! parser of our own: plain and hashed (`|1|salt|hmac`) names, `[host]:port`, `*`/`?`,
//! `!negation`, `@revoked`; `@cert-authority` lines are skipped (host certificates are not
//! used). Keys are compared by key data only. New keys are appended hashed, as OpenSSH does
//! with `HashKnownHosts yes` (Debian's default), so the file does not list host names.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};
use sha1::Sha1;

use super::config::pattern_list_match;

/// Serialises appends from concurrent host tasks so lines never interleave.
static APPEND_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostKeyStatus {
    Known,
    Unknown,
    /// A line for this host and key type holds another key.
    Changed {
        location: String,
        expected_fingerprint: String,
    },
    /// The key is marked `@revoked`.
    Revoked {
        location: String,
    },
    /// The host is known, but only by keys of other types than the one it offered (the
    /// handshake asked for a known type first, so the host no longer has one).
    OtherTypeKnown {
        location: String,
        known_types: Vec<String>,
    },
}

/// The name a known_hosts line uses for `host` on `port`.
pub(crate) fn entry_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn hashed_match(entry: &str, name: &str) -> bool {
    let mut parts = entry.split('|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    match Hmac::<Sha1>::new_from_slice(&salt) {
        Ok(mac) => mac
            .chain_update(name.as_bytes())
            .verify_slice(&hash)
            .is_ok(),
        Err(_) => false,
    }
}

fn host_field_matches(field: &str, name: &str) -> bool {
    if field.starts_with("|1|") {
        return field.split(',').any(|e| hashed_match(e, name));
    }
    pattern_list_match(field.split(','), name)
}

/// Check `key` for `name` (from [`entry_name`]) against `files` in order. A missing file is
/// empty; an unreadable one is an error naming it.
pub(crate) fn check(
    files: &[PathBuf],
    name: &str,
    key: &PublicKey,
) -> Result<HostKeyStatus, (PathBuf, std::io::Error)> {
    let mut changed: Option<HostKeyStatus> = None;
    let mut known = false;
    // (first location, algorithms) of this host's entries of other key types.
    let mut other: Option<(String, Vec<String>)> = None;
    // Every line is read: a revocation anywhere beats a match (OpenSSH checks it first).
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err((path.clone(), e)),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let marker = if first.starts_with('@') {
                let m = first;
                first = fields.next().unwrap_or_default();
                Some(m)
            } else {
                None
            };
            let (Some(_keytype), Some(b64)) = (fields.next(), fields.next()) else {
                continue;
            };
            if !host_field_matches(first, name) {
                continue;
            }
            // A line we cannot parse is skipped, not fatal: one bad line must not lock the
            // user out of every host in the file.
            let Ok(recorded) = russh::keys::parse_public_key_base64(b64) else {
                tracing::debug!("{}:{}: unparsable key skipped", path.display(), i + 1);
                continue;
            };
            let location = format!("{}:{}", path.display(), i + 1);
            match marker {
                Some("@revoked") => {
                    if recorded.key_data() == key.key_data() {
                        return Ok(HostKeyStatus::Revoked { location });
                    }
                }
                Some(_) => {}
                None => {
                    if recorded.key_data() == key.key_data() {
                        known = true;
                    }
                    if recorded.algorithm() == key.algorithm() {
                        if changed.is_none() {
                            changed = Some(HostKeyStatus::Changed {
                                location,
                                expected_fingerprint: fingerprint(&recorded),
                            });
                        }
                    } else {
                        let alg = recorded.algorithm().as_str().to_string();
                        let o = other.get_or_insert_with(|| (location, Vec::new()));
                        if !o.1.contains(&alg) {
                            o.1.push(alg);
                        }
                    }
                }
            }
        }
    }
    if known {
        return Ok(HostKeyStatus::Known);
    }
    if let Some(c) = changed {
        return Ok(c);
    }
    Ok(match other {
        Some((location, known_types)) => HostKeyStatus::OtherTypeKnown {
            location,
            known_types,
        },
        None => HostKeyStatus::Unknown,
    })
}

/// Key algorithms recorded for `name` (plain entries only), so the handshake can ask the
/// server for a key we can verify, as OpenSSH orders its HostKeyAlgorithms.
pub(crate) fn known_algorithms(files: &[PathBuf], name: &str) -> Vec<russh::keys::Algorithm> {
    let mut out = Vec::new();
    for path in files {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let (Some(hosts), Some(_), Some(b64)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if !host_field_matches(hosts, name) {
                continue;
            }
            if let Ok(k) = russh::keys::parse_public_key_base64(b64)
                && !out.contains(&k.algorithm())
            {
                out.push(k.algorithm());
            }
        }
    }
    out
}

/// Append a hashed entry for `name` to `path` (created 0600 with its directory if needed).
pub(crate) fn append(path: &Path, name: &str, key: &PublicKey) -> std::io::Result<()> {
    let mut salt = [0u8; 20];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    let mac = Hmac::<Sha1>::new_from_slice(&salt)
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .chain_update(name.as_bytes())
        .finalize()
        .into_bytes();
    let bare = PublicKey::new(key.key_data().clone(), "");
    let key_text = bare
        .to_openssh()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let line = format!(
        "|1|{}|{} {}\n",
        BASE64.encode(&salt),
        BASE64.encode(&mac),
        key_text
    );

    let _guard = APPEND_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    // Keep the previous last line intact if it lacks a newline.
    let len = f.metadata()?.len();
    let mut prefix = String::new();
    if len > 0 && path != Path::new("/dev/null") {
        use std::io::{Seek, SeekFrom};
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            prefix.push('\n');
        }
    }
    f.write_all(format!("{prefix}{line}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(b: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b).unwrap()
    }

    #[test]
    fn plain_hashed_wildcard_changed_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kh");
        std::fs::write(
            &f,
            format!(
                "# c\n[127.0.0.1]:2201 ssh-ed25519 {K1} comment\n*.lab,!bad.lab ssh-ed25519 {K2}\n@revoked bad.* ssh-ed25519 {K2}\n"
            ),
        )
        .unwrap();
        let files = vec![f.clone()];
        assert_eq!(
            check(&files, "[127.0.0.1]:2201", &key(K1)).unwrap(),
            HostKeyStatus::Known
        );
        assert!(matches!(
            check(&files, "[127.0.0.1]:2201", &key(K2)).unwrap(),
            HostKeyStatus::Changed { ref location, .. } if location.ends_with("kh:2")
        ));
        assert_eq!(
            check(&files, "a.lab", &key(K2)).unwrap(),
            HostKeyStatus::Known
        );
        assert!(matches!(
            check(&files, "bad.lab", &key(K2)).unwrap(),
            HostKeyStatus::Revoked { .. }
        ));
        assert_eq!(
            check(&files, "other", &key(K1)).unwrap(),
            HostKeyStatus::Unknown
        );

        append(&f, "[10.0.0.9]:22", &key(K1)).unwrap();
        assert_eq!(
            check(&files, "[10.0.0.9]:22", &key(K1)).unwrap(),
            HostKeyStatus::Known
        );
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("10.0.0.9"), "entries are hashed");
        assert_eq!(
            check(&[dir.path().join("missing")], "x", &key(K1)).unwrap(),
            HostKeyStatus::Unknown
        );
    }
}
