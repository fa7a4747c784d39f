//! The upstream bundle: the exact release files Rookery applies verbatim (snapshot CRDs and
//! controller, Rook CRDs/common/csi-operator/operator, Velero CRDs), pinned by sha256 in
//! `runner/stack/upstream.lock.yaml` (embedded in the binary).
//!
//! A bundle directory has the layout `<project>-<tag>/<path at the tag>`, the same as
//! `shared/upstream`. `fetch` fills the per-user cache from the release URLs (curl, so no
//! TLS stack is linked in); air-gapped sites prepare a directory and pass `--bundle-dir`.
//! Every read checks the hash, so a tampered or truncated file never reaches a cluster.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The lock file, embedded so a binary always knows the files it was built for.
pub const LOCK_YAML: &str = include_str!("../upstream.lock.yaml");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// Bundle name; also the cache subdirectory.
    pub bundle: String,
    pub files: Vec<LockedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    /// Relative to the bundle directory.
    pub path: String,
    pub project: String,
    pub version: String,
    pub commit: String,
    pub url: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the embedded bundle lock file is invalid")]
    Lock(#[source] crate::yaml::YamlError),
    #[error("bundle file `{}` is missing", .0.display())]
    Missing(PathBuf),
    #[error("cannot read bundle file `{}`", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "bundle file `{}` has sha256 {actual}, the lock file pins {expected}",
        .path.display()
    )]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("bundle file `{}` is not UTF-8 text", .0.display())]
    NotText(PathBuf),
    #[error("cannot write into the bundle directory `{}`", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run curl to download `{url}`")]
    Curl {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("download of `{url}` failed (curl exit {status}): {stderr}")]
    Download {
        url: String,
        status: i32,
        stderr: String,
    },
    #[error("no cache directory: neither XDG_CACHE_HOME nor HOME is set (use --bundle-dir)")]
    NoCacheDir,
}

/// Seconds for curl, which takes fractions.
fn secs(d: std::time::Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// Parse the embedded lock file.
pub fn lock() -> Result<LockFile, BundleError> {
    crate::yaml::parse(LOCK_YAML, Path::new("runner/stack/upstream.lock.yaml"))
        .map_err(BundleError::Lock)
}

/// `$XDG_CACHE_HOME/rookery/bundle/<bundle>` or `~/.cache/rookery/bundle/<bundle>`.
pub fn default_dir(lock: &LockFile) -> Result<PathBuf, BundleError> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => {
            PathBuf::from(std::env::var_os("HOME").ok_or(BundleError::NoCacheDir)?).join(".cache")
        }
    };
    Ok(base.join("rookery").join("bundle").join(&lock.bundle))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What `verify` found for one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum FileStatus {
    Ok,
    Missing,
    Mismatch { actual: String },
}

/// Bounds on one download, so a stalled or hostile server cannot hold `bundle fetch` for
/// ever or fill the disk: curl's `--connect-timeout` (TCP + TLS), `--max-time` (the whole
/// transfer), and `--max-filesize` from the lock's byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    pub connect_timeout: std::time::Duration,
    pub max_time: std::time::Duration,
}

impl Default for FetchLimits {
    /// 30 s to connect, 10 minutes per file (the largest locked file is a few MiB).
    fn default() -> Self {
        FetchLimits {
            connect_timeout: std::time::Duration::from_secs(30),
            max_time: std::time::Duration::from_secs(600),
        }
    }
}

/// A bundle directory checked against the lock file.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub lock: LockFile,
    pub fetch_limits: FetchLimits,
}

impl Bundle {
    pub fn new(dir: impl Into<PathBuf>, lock: LockFile) -> Self {
        Bundle {
            dir: dir.into(),
            lock,
            fetch_limits: FetchLimits::default(),
        }
    }

    /// Check every locked file (all of them, so one run lists every problem).
    pub fn verify(&self) -> Vec<(&LockedFile, FileStatus)> {
        self.lock
            .files
            .iter()
            .map(|f| {
                let status = match std::fs::read(self.dir.join(&f.path)) {
                    Err(_) => FileStatus::Missing,
                    Ok(bytes) => {
                        let actual = sha256_hex(&bytes);
                        if actual == f.sha256 {
                            FileStatus::Ok
                        } else {
                            FileStatus::Mismatch { actual }
                        }
                    }
                };
                (f, status)
            })
            .collect()
    }

    /// Read a locked file's text after checking its hash.
    pub fn read(&self, file: &LockedFile) -> Result<String, BundleError> {
        let path = self.dir.join(&file.path);
        let bytes = std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                BundleError::Missing(path.clone())
            } else {
                BundleError::Read {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        let actual = sha256_hex(&bytes);
        if actual != file.sha256 {
            return Err(BundleError::HashMismatch {
                path,
                expected: file.sha256.clone(),
                actual,
            });
        }
        String::from_utf8(bytes).map_err(|_| BundleError::NotText(path))
    }

    /// Locked files under a project directory prefix, in lock order.
    pub fn files_under<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a LockedFile> {
        self.lock
            .files
            .iter()
            .filter(move |f| f.path.starts_with(prefix))
    }

    /// Download missing or wrong files with curl, verify, and move them into place.
    /// `on_file` is told each file and whether it was downloaded (false: already cached).
    pub fn fetch(&self, mut on_file: impl FnMut(&LockedFile, bool)) -> Result<(), BundleError> {
        for file in &self.lock.files {
            let dest = self.dir.join(&file.path);
            if std::fs::read(&dest).is_ok_and(|b| sha256_hex(&b) == file.sha256) {
                on_file(file, false);
                continue;
            }
            let parent = dest.parent().unwrap_or(&self.dir);
            std::fs::create_dir_all(parent).map_err(|source| BundleError::Write {
                path: parent.to_path_buf(),
                source,
            })?;
            let tmp = dest.with_extension("partial");
            let limits = self.fetch_limits;
            let output = Command::new("curl")
                .args(["-fsSL", "--proto", "=https", "--retry", "2"])
                .arg("--connect-timeout")
                .arg(secs(limits.connect_timeout))
                .arg("--max-time")
                .arg(secs(limits.max_time))
                // curl stops early when the server announces more; the hash check below
                // catches a server that sends more without saying so.
                .arg("--max-filesize")
                .arg(file.bytes.to_string())
                .arg("-o")
                .arg(&tmp)
                .arg(&file.url)
                .env("LC_ALL", "C")
                .output()
                .map_err(|source| BundleError::Curl {
                    url: file.url.clone(),
                    source,
                })?;
            if !output.status.success() {
                let _ = std::fs::remove_file(&tmp);
                return Err(BundleError::Download {
                    url: file.url.clone(),
                    status: output.status.code().unwrap_or(-1),
                    // curl repeats its message per retry; the last line says it all.
                    stderr: String::from_utf8_lossy(&output.stderr)
                        .lines()
                        .rfind(|l| !l.trim().is_empty())
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                });
            }
            let bytes = std::fs::read(&tmp).map_err(|source| BundleError::Read {
                path: tmp.clone(),
                source,
            })?;
            let actual = sha256_hex(&bytes);
            if actual != file.sha256 {
                let _ = std::fs::remove_file(&tmp);
                return Err(BundleError::HashMismatch {
                    path: dest,
                    expected: file.sha256.clone(),
                    actual,
                });
            }
            std::fs::rename(&tmp, &dest).map_err(|source| BundleError::Write {
                path: dest.clone(),
                source,
            })?;
            on_file(file, true);
        }
        Ok(())
    }
}
