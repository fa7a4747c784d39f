//! Credentials by reference: `{env: NAME}`, `{file: PATH}` or `{secret: {name, key}}`.
//!
//! The stack file never holds a secret value, so it can live in git. Resolution reads the
//! value only when a manifest must carry it, and neither errors nor `Debug` output ever
//! include it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialRef {
    /// An environment variable of the `rookery` process.
    Env(String),
    /// A file on the control machine (relative paths: relative to the stack file).
    File(PathBuf),
    /// A Secret that already exists in the cluster; Rookery only references it.
    Secret(SecretKeyRef),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// The YAML shape: a map with exactly one of the three keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRef {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    secret: Option<SecretKeyRef>,
}

impl<'de> Deserialize<'de> for CredentialRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CredentialRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a credential reference: {env: NAME}, {file: PATH} or {secret: {name, key}}",
                )
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<CredentialRef, E> {
                // Never echo the string: it may be the secret itself.
                Err(E::custom(
                    "credentials are references, never literal values: write {env: NAME}, {file: PATH} or {secret: {name: NAME, key: KEY}}",
                ))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<CredentialRef, A::Error> {
                let raw = RawRef::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                match (raw.env, raw.file, raw.secret) {
                    (Some(e), None, None) => Ok(CredentialRef::Env(e)),
                    (None, Some(f), None) => Ok(CredentialRef::File(f)),
                    (None, None, Some(s)) => Ok(CredentialRef::Secret(s)),
                    _ => Err(serde::de::Error::custom(
                        "a credential reference has exactly one of `env`, `file`, `secret`",
                    )),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialRef::Env(n) => write!(f, "env:{n}"),
            CredentialRef::File(p) => write!(f, "file:{}", p.display()),
            CredentialRef::Secret(s) => write!(f, "secret:{}/{}", s.name, s.key),
        }
    }
}

/// A resolved secret value. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Without one trailing line break: a password file written by `echo` must not turn the
    /// newline into part of the password.
    pub fn without_trailing_newline(&self) -> &[u8] {
        let b = self.0.strip_suffix(b"\n").unwrap_or(&self.0);
        b.strip_suffix(b"\r").unwrap_or(b)
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue(<{} bytes, redacted>)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("environment variable `{0}` is not set")]
    EnvMissing(String),
    #[error("environment variable `{0}` is empty")]
    EnvEmpty(String),
    #[error("cannot read credential file `{}`", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credential file `{}` is empty", .0.display())]
    FileEmpty(PathBuf),
}

/// How a reference resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The value, read from the environment or a file.
    Value(SecretValue),
    /// An existing Secret: nothing to read, the cluster provides it.
    InCluster(SecretKeyRef),
}

impl CredentialRef {
    /// Read the value. `base` is the stack file's directory, for relative `file:` paths.
    pub fn resolve(&self, base: &Path) -> Result<Resolved, CredentialError> {
        match self {
            CredentialRef::Env(name) => match std::env::var_os(name) {
                None => Err(CredentialError::EnvMissing(name.clone())),
                Some(v) if v.is_empty() => Err(CredentialError::EnvEmpty(name.clone())),
                Some(v) => Ok(Resolved::Value(SecretValue(v.into_encoded_bytes()))),
            },
            CredentialRef::File(path) => {
                let full = if path.is_absolute() {
                    path.clone()
                } else {
                    base.join(path)
                };
                let bytes = std::fs::read(&full).map_err(|source| CredentialError::File {
                    path: full.clone(),
                    source,
                })?;
                if bytes.is_empty() {
                    return Err(CredentialError::FileEmpty(full));
                }
                Ok(Resolved::Value(SecretValue(bytes)))
            }
            CredentialRef::Secret(s) => Ok(Resolved::InCluster(s.clone())),
        }
    }
}
