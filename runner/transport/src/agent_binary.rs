//! The agent executable the runner ships to every host: its bytes and sha256, and where to
//! find it on the control machine. The sha256 names the file on the node, so a changed
//! build is uploaded again and an unchanged one never is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Environment variable naming the agent binary (after `--agent-binary`).
pub const AGENT_ENV: &str = "ROOKERY_AGENT";

#[derive(Debug, thiserror::Error)]
pub enum AgentBinaryError {
    #[error("cannot read the agent binary {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no rookery-agent binary found (looked at: {}); pass --agent-binary PATH or set {AGENT_ENV}",
        looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound { looked: Vec<PathBuf> },
}

/// The agent executable: its path on the control machine, its bytes and their sha256.
#[derive(Clone)]
pub struct AgentBinary {
    path: PathBuf,
    bytes: Arc<[u8]>,
    sha256: String,
}

impl std::fmt::Debug for AgentBinary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBinary")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl AgentBinary {
    /// Read `path` and hash it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AgentBinaryError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| AgentBinaryError::Read {
            path: path.clone(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(AgentBinary {
            path,
            bytes: bytes.into(),
            sha256,
        })
    }

    /// Find the agent: `explicit` (`--agent-binary`), then `$ROOKERY_AGENT`, then
    /// `rookery-agent` beside the running executable (installed layout), then the static dev
    /// build `<target>/x86_64-unknown-linux-gnu/agent/rookery-agent` when running from a cargo
    /// target directory.
    pub fn locate(explicit: Option<&Path>) -> Result<Self, AgentBinaryError> {
        if let Some(p) = explicit {
            return Self::load(p);
        }
        if let Some(p) = std::env::var_os(AGENT_ENV).filter(|p| !p.is_empty()) {
            return Self::load(PathBuf::from(p));
        }
        let mut looked = Vec::new();
        if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
        {
            {
                let sibling = dir.join("rookery-agent");
                if sibling.is_file() {
                    return Self::load(sibling);
                }
                looked.push(sibling);
                // target/<profile>/rookery (or target/<profile>/deps/<test>) -> target/
                for target in dir.ancestors().skip(1).take(2) {
                    let dev = target.join("x86_64-unknown-linux-gnu/agent/rookery-agent");
                    if dev.is_file() {
                        return Self::load(dev);
                    }
                    looked.push(dev);
                }
            }
        }
        Err(AgentBinaryError::NotFound { looked })
    }

    /// Build from bytes already in memory (tests, embedded builds).
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Self {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        AgentBinary {
            path,
            bytes: bytes.into(),
            sha256,
        }
    }

    /// Lower-case hex sha256 of the bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Where it was read from on the control machine.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// True when the ELF file has no program interpreter (statically linked), i.e. it runs on
    /// any Linux host of the same architecture, whatever its libc.
    pub fn is_static(&self) -> bool {
        elf_has_no_interp(&self.bytes).unwrap_or(false)
    }
}

/// Parse just enough of a 64-bit little-endian ELF header to look for a PT_INTERP segment.
fn elf_has_no_interp(b: &[u8]) -> Option<bool> {
    if b.get(0..4)? != b"\x7fELF" || *b.get(4)? != 2 || *b.get(5)? != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        if u32_at(phoff.checked_add(i.checked_mul(phentsize)?)?)? == PT_INTERP {
            return Some(false);
        }
    }
    Some(true)
}
