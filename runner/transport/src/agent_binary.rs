//! The agent executables the runner ships to hosts, one per CPU architecture: their bytes,
//! sha256 and architecture, and where to find them on the control machine. The sha256 names
//! the file on the node, so a changed build is uploaded again and an unchanged one never is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

/// Environment variable naming the agent binaries (after `--agent-binary`): one path, or
/// several separated by `:` (one per architecture).
pub const AGENT_ENV: &str = "ROOKERY_AGENT";

/// A CPU architecture an agent is built for, by the name Linux's `uname -m` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The canonical `uname -m` name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Every `uname -m` answer that means this architecture (`arm64` on some kernels/BSD
    /// userlands, `amd64` likewise).
    pub fn uname_names(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["x86_64", "amd64"],
            Arch::Aarch64 => &["aarch64", "arm64"],
        }
    }

    /// The Rust target the shipped (static, musl) agent is built for.
    pub fn musl_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Aarch64 => "aarch64-unknown-linux-musl",
        }
    }

    pub fn from_uname(s: &str) -> Option<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.uname_names().contains(&s.trim()))
    }

    /// The control machine's architecture.
    pub fn host() -> Option<Arch> {
        Arch::from_uname(std::env::consts::ARCH)
    }

    /// From an ELF header's `e_machine`.
    fn from_elf(bytes: &[u8]) -> Option<Arch> {
        if bytes.get(0..4)? != b"\x7fELF" || *bytes.get(5)? != 1 {
            return None;
        }
        match u16::from_le_bytes(bytes.get(0x12..0x14)?.try_into().ok()?) {
            0x3e => Some(Arch::X86_64),
            0xb7 => Some(Arch::Aarch64),
            _ => None,
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
    #[error(
        "two agent binaries for {arch}: {} and {}; give one per architecture",
        first.display(), second.display()
    )]
    DuplicateArch {
        arch: Arch,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "{} is not a Linux executable for an architecture rookery knows (x86_64, aarch64)",
        path.display()
    )]
    UnknownArch { path: PathBuf },
}

/// The agent executable: its path on the control machine, its bytes and their sha256.
#[derive(Clone)]
pub struct AgentBinary {
    path: PathBuf,
    bytes: Arc<[u8]>,
    sha256: String,
    arch: Option<Arch>,
}

impl std::fmt::Debug for AgentBinary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBinary")
            .field("path", &self.path)
            .field("len", &self.bytes.len())
            .field("sha256", &self.sha256)
            .field("arch", &self.arch)
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
        Ok(Self::from_bytes(path, bytes))
    }

    /// Build from bytes already in memory (tests, embedded builds). The architecture is read
    /// from the ELF header; anything else (a test's shell-script agent) is taken to be for the
    /// control machine's own architecture.
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Self {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let arch = if bytes.starts_with(b"\x7fELF") {
            Arch::from_elf(&bytes)
        } else {
            Arch::host()
        };
        AgentBinary {
            path,
            bytes: bytes.into(),
            sha256,
            arch,
        }
    }

    /// The architecture it runs on (None: an ELF file for one rookery does not know).
    pub fn arch(&self) -> Option<Arch> {
        self.arch
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

/// The agents to ship, at most one per architecture; a host gets the one for the architecture
/// its `uname -m` reports.
#[derive(Clone, Debug, Default)]
pub struct Agents {
    list: Vec<AgentBinary>,
}

impl From<AgentBinary> for Agents {
    fn from(a: AgentBinary) -> Self {
        Agents { list: vec![a] }
    }
}

impl Agents {
    /// Refuses two binaries for one architecture and binaries of an unknown one.
    pub fn new(list: Vec<AgentBinary>) -> Result<Self, AgentBinaryError> {
        let mut out: Vec<AgentBinary> = Vec::new();
        for a in list {
            let Some(arch) = a.arch else {
                return Err(AgentBinaryError::UnknownArch { path: a.path });
            };
            if let Some(prev) = out.iter().find(|p| p.arch == Some(arch)) {
                return Err(AgentBinaryError::DuplicateArch {
                    arch,
                    first: prev.path.clone(),
                    second: a.path,
                });
            }
            out.push(a);
        }
        out.sort_by_key(|a| a.arch);
        Ok(Agents { list: out })
    }

    /// Find the agents: every `explicit` path (`--agent-binary`, one per architecture), else
    /// the paths in `$ROOKERY_AGENT`, else `rookery-agent-<arch>` (and a plain
    /// `rookery-agent`) beside the running executable (the `cargo xtask build` layout), else
    /// the static dev builds `<target>/<arch>-unknown-linux-musl/agent/rookery-agent` when
    /// running from a cargo target directory.
    pub fn locate(explicit: &[PathBuf]) -> Result<Self, AgentBinaryError> {
        if !explicit.is_empty() {
            return Self::load_all(explicit);
        }
        if let Some(v) = std::env::var_os(AGENT_ENV).filter(|p| !p.is_empty()) {
            let paths: Vec<PathBuf> = std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            return Self::load_all(&paths);
        }
        let mut looked = Vec::new();
        if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
        {
            let mut tiers: Vec<Vec<PathBuf>> = Vec::new();
            let mut beside: Vec<PathBuf> = Arch::ALL
                .iter()
                .map(|a| dir.join(format!("rookery-agent-{a}")))
                .collect();
            beside.push(dir.join("rookery-agent"));
            tiers.push(beside);
            // target/<profile>/rookery (or target/<profile>/deps/<test>) -> target/
            for target in dir.ancestors().skip(1).take(2) {
                tiers.push(
                    Arch::ALL
                        .iter()
                        .map(|a| target.join(a.musl_target()).join("agent/rookery-agent"))
                        .collect(),
                );
            }
            for tier in tiers {
                let found: Vec<PathBuf> = tier.iter().filter(|p| p.is_file()).cloned().collect();
                looked.extend(tier);
                if !found.is_empty() {
                    return Self::load_all(&found);
                }
            }
        }
        Err(AgentBinaryError::NotFound { looked })
    }

    fn load_all(paths: &[PathBuf]) -> Result<Self, AgentBinaryError> {
        let list = paths
            .iter()
            .map(AgentBinary::load)
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(list)
    }

    /// The agent for `arch`, if there is one.
    pub fn for_arch(&self, arch: Arch) -> Option<&AgentBinary> {
        self.list.iter().find(|a| a.arch == Some(arch))
    }

    /// The agent for the control machine itself (`ansible_connection: local`).
    pub fn native(&self) -> Option<&AgentBinary> {
        Arch::host().and_then(|a| self.for_arch(a))
    }

    pub fn iter(&self) -> impl Iterator<Item = &AgentBinary> {
        self.list.iter()
    }

    /// `x86_64 (PATH), aarch64 (PATH)`, for messages; `none` when empty.
    pub fn describe(&self) -> String {
        if self.list.is_empty() {
            return "none".into();
        }
        self.list
            .iter()
            .map(|a| {
                format!(
                    "{} ({})",
                    a.arch.map(Arch::name).unwrap_or("unknown"),
                    a.path.display()
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[0..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        b
    }

    #[test]
    fn arch_from_elf_header() {
        let x = AgentBinary::from_bytes("x".into(), elf(0x3e));
        let a = AgentBinary::from_bytes("a".into(), elf(0xb7));
        let riscv = AgentBinary::from_bytes("r".into(), elf(0xf3));
        assert_eq!(x.arch(), Some(Arch::X86_64));
        assert_eq!(a.arch(), Some(Arch::Aarch64));
        assert_eq!(riscv.arch(), None);
        // A script stands in for the control machine's own architecture.
        let script = AgentBinary::from_bytes("s".into(), b"#!/bin/sh\n".to_vec());
        assert_eq!(script.arch(), Arch::host());
        let agents = Agents::new(vec![a.clone(), x.clone()]).unwrap();
        assert_eq!(
            agents.for_arch(Arch::X86_64).unwrap().path(),
            Path::new("x")
        );
        assert_eq!(
            agents.for_arch(Arch::Aarch64).unwrap().path(),
            Path::new("a")
        );
        assert_eq!(agents.describe(), "x86_64 (x), aarch64 (a)");
        assert!(matches!(
            Agents::new(vec![x.clone(), x]),
            Err(AgentBinaryError::DuplicateArch {
                arch: Arch::X86_64,
                ..
            })
        ));
        assert!(matches!(
            Agents::new(vec![riscv]),
            Err(AgentBinaryError::UnknownArch { .. })
        ));
    }

    #[test]
    fn uname_names() {
        assert_eq!(Arch::from_uname("arm64\n"), Some(Arch::Aarch64));
        assert_eq!(Arch::from_uname("amd64"), Some(Arch::X86_64));
        assert_eq!(Arch::from_uname("riscv64"), None);
    }
}
