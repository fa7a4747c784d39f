//! Mounts and swap areas, from `/proc/self/mountinfo` and `/proc/swaps`, and which of them a
//! block device is behind.

use std::fs;
use std::path::PathBuf;

use super::{Devno, OsPaths, read_text};

/// Large hosts (Kubernetes nodes) have thousands of mounts; this is far above that.
const MOUNTINFO_MAX: u64 = 16 << 20;

/// One line of mountinfo: the device number, where it is mounted, and the mount source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` as mountinfo prints it (`0:45` for btrfs and other anonymous devices).
    pub devno: String,
    pub mountpoint: String,
    pub source: String,
}

/// mountinfo and /proc/swaps escape space, tab, newline and backslash as `\ooo`; every other
/// byte (UTF-8 of a non-ASCII path included) is written as is. Decodes bytes, then UTF-8.
pub fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3');
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every line of `/proc/self/mountinfo` that has the fields we need.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(Mount {
                devno: f.get(2)?.to_string(),
                mountpoint: unescape_octal(f.get(4)?),
                source: unescape_octal(f.get(sep + 2)?),
            })
        })
        .collect()
}

impl OsPaths {
    pub fn mounts(&self) -> Vec<Mount> {
        read_text(&self.proc_.join("self/mountinfo"), MOUNTINFO_MAX)
            .map(|t| parse_mountinfo(&t))
            .unwrap_or_default()
    }

    /// Canonical paths of the active swap areas.
    pub fn swaps(&self) -> Vec<PathBuf> {
        read_text(&self.proc_.join("swaps"), MOUNTINFO_MAX)
            .map(|t| {
                t.lines()
                    .skip(1)
                    .filter_map(|l| l.split_whitespace().next())
                    .map(|p| {
                        let p = PathBuf::from(unescape_octal(p));
                        fs::canonicalize(&p).unwrap_or(p)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The canonical `/dev` node of block device `name`.
    pub fn dev_node(&self, name: &str) -> PathBuf {
        let p = self.dev.join(name);
        fs::canonicalize(&p).unwrap_or(p)
    }

    /// Where block device `name` (device number `devno`) is mounted: matched by device
    /// number, or by mount source for filesystems that report an anonymous `0:N` (btrfs).
    pub fn mountpoints_of(
        &self,
        mounts: &[Mount],
        name: &str,
        devno: Option<Devno>,
    ) -> Vec<String> {
        let node = self.dev_node(name);
        let devno = devno.map(|d| d.to_string());
        mounts
            .iter()
            .filter(|m| {
                devno.as_deref() == Some(m.devno.as_str())
                    || (m.source.starts_with('/')
                        && fs::canonicalize(&m.source).is_ok_and(|s| s == node))
            })
            .map(|m| m.mountpoint.clone())
            .collect()
    }

    /// Block device `name` is an active swap area.
    pub fn is_swap(&self, swaps: &[PathBuf], name: &str) -> bool {
        swaps.contains(&self.dev_node(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fields_and_escapes() {
        let t = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                 40 22 0:45 / /mnt/my\\040disk rw - btrfs /dev/loop3 rw\n\
                 41 22 7:3 / /mnt/caf\\303\\251\\011x rw - ext4 /dev/loop4 rw\n\
                 42 22 7:5 / /mnt/café rw - ext4 /dev/loop5 rw\n";
        let m = parse_mountinfo(t);
        assert_eq!(
            m[0],
            Mount {
                devno: "254:0".into(),
                mountpoint: "/".into(),
                source: "/dev/vda".into()
            }
        );
        assert_eq!(m[1].mountpoint, "/mnt/my disk");
        assert_eq!(m[1].source, "/dev/loop3");
        // Escaped UTF-8 bytes and raw UTF-8 both come out as the path the user typed.
        assert_eq!(m[2].mountpoint, "/mnt/café\tx");
        assert_eq!(m[3].mountpoint, "/mnt/café");
    }

    #[test]
    fn unescape_edge_cases() {
        assert_eq!(unescape_octal("/plain"), "/plain");
        assert_eq!(unescape_octal("a\\134b"), "a\\b");
        // Not an escape: too short, not octal, or out of byte range.
        assert_eq!(unescape_octal("a\\04"), "a\\04");
        assert_eq!(unescape_octal("a\\089"), "a\\089");
        assert_eq!(unescape_octal("a\\777"), "a\\777");
        assert_eq!(unescape_octal("end\\"), "end\\");
    }
}
