//! File operations for the runner's copy/template/file steps: stat (with sha256), bounded
//! reads, atomic writes, and directory/absent states.
//!
//! Owner and group names are resolved from `/etc/passwd` and `/etc/group` directly: the agent
//! is a static glibc binary, where `getpwnam` would need NSS shared libraries at run time.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use rookery_proto::{
    AgentError, DesiredFileState, ErrorCode, FileStateRequest, FileStateResult, FileType,
    ReadFileRequest, ReadFileResult, StatRequest, StatResult, WriteFileRequest, WriteFileResult,
};
use sha2::{Digest, Sha256};

/// Maps an I/O error on `path` during `what` to a protocol error naming both.
pub fn io_error(what: &str, path: &str, e: &io::Error) -> AgentError {
    let code = match e.kind() {
        io::ErrorKind::NotFound => ErrorCode::NotFound,
        io::ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
        _ => ErrorCode::Io,
    };
    AgentError {
        code,
        message: format!("{what} {path}: {e}"),
    }
}

/// sha256 of a file's contents, lower-case hex.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

pub fn stat(req: &StatRequest) -> Result<StatResult, AgentError> {
    let md = match fs::symlink_metadata(&req.path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(StatResult {
                exists: false,
                file_type: None,
                mode: None,
                uid: None,
                gid: None,
                owner: None,
                group: None,
                size: None,
                sha256: None,
            });
        }
        Err(e) => return Err(io_error("cannot stat", &req.path, &e)),
    };
    let ft = md.file_type();
    let file_type = if ft.is_file() {
        FileType::File
    } else if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else {
        FileType::Other
    };
    let sha256 = if req.checksum && file_type == FileType::File {
        Some(
            sha256_file(Path::new(&req.path))
                .map_err(|e| io_error("cannot hash", &req.path, &e))?,
        )
    } else {
        None
    };
    Ok(StatResult {
        exists: true,
        file_type: Some(file_type),
        mode: Some(md.mode() & 0o7777),
        uid: Some(md.uid()),
        gid: Some(md.gid()),
        owner: name_of("passwd", md.uid()),
        group: name_of("group", md.gid()),
        size: Some(md.size()),
        sha256,
    })
}

pub fn read_file(req: &ReadFileRequest) -> Result<ReadFileResult, AgentError> {
    let md = fs::metadata(&req.path).map_err(|e| io_error("cannot read", &req.path, &e))?;
    if md.len() > req.max_bytes {
        return Err(AgentError {
            code: ErrorCode::Refused,
            message: format!(
                "cannot read {}: {} bytes is more than the limit of {}",
                req.path,
                md.len(),
                req.max_bytes
            ),
        });
    }
    let mut bytes = Vec::new();
    File::open(&req.path)
        // +1 catches a file that grew since the stat without reading unbounded data.
        .and_then(|f| f.take(req.max_bytes + 1).read_to_end(&mut bytes))
        .map_err(|e| io_error("cannot read", &req.path, &e))?;
    if bytes.len() as u64 > req.max_bytes {
        return Err(AgentError {
            code: ErrorCode::Refused,
            message: format!(
                "cannot read {}: larger than {} bytes",
                req.path, req.max_bytes
            ),
        });
    }
    match String::from_utf8(bytes) {
        Ok(s) => Ok(ReadFileResult {
            content: s,
            is_utf8: true,
        }),
        Err(e) => Ok(ReadFileResult {
            content: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            is_utf8: false,
        }),
    }
}

/// Writes via a temp file in the same directory and `rename`, so readers never see a
/// half-written file and a crash leaves the old content.
pub fn write_file(req: &WriteFileRequest) -> Result<WriteFileResult, AgentError> {
    let bytes = crate::base64::decode(&req.content_base64).map_err(|e| AgentError {
        code: ErrorCode::BadRequest,
        message: format!("content for {}: {e}", req.path),
    })?;
    let path = Path::new(&req.path);
    let (uid, gid) = resolve_owner(req.owner.as_deref(), req.group.as_deref(), &req.path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| AgentError {
            code: ErrorCode::BadRequest,
            message: format!("cannot write {}: not a file path", req.path),
        })?;
    let tmp = dir.join(format!(".{file_name}.rookery-{}.tmp", std::process::id()));
    let result = (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        // Keep the old file's mode when none is asked for, like `install` would not.
        let mode = match req.mode {
            Some(m) => Some(m),
            None => fs::metadata(path).ok().map(|m| m.mode() & 0o7777),
        };
        if uid.is_some() || gid.is_some() {
            std::os::unix::fs::chown(&tmp, uid, gid)?;
        }
        // chmod after chown: chown clears setuid/setgid bits.
        if let Some(m) = mode {
            fs::set_permissions(&tmp, fs::Permissions::from_mode(m))?;
        }
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("cannot write", &req.path, &e));
    }
    let mut h = Sha256::new();
    h.update(&bytes);
    Ok(WriteFileResult {
        sha256: hex::encode(h.finalize()),
    })
}

pub fn file_state(req: &FileStateRequest) -> Result<FileStateResult, AgentError> {
    let path = Path::new(&req.path);
    match req.state {
        DesiredFileState::Absent => {
            let md = match fs::symlink_metadata(path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Ok(FileStateResult { changed: false });
                }
                Err(e) => return Err(io_error("cannot stat", &req.path, &e)),
            };
            let r = if md.is_dir() {
                fs::remove_dir_all(path)
            } else {
                fs::remove_file(path)
            };
            r.map_err(|e| io_error("cannot remove", &req.path, &e))?;
            Ok(FileStateResult { changed: true })
        }
        DesiredFileState::Directory => {
            let (uid, gid) = resolve_owner(req.owner.as_deref(), req.group.as_deref(), &req.path)?;
            let mut changed = false;
            match fs::symlink_metadata(path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(AgentError {
                        code: ErrorCode::Refused,
                        message: format!(
                            "cannot create directory {}: a non-directory exists there",
                            req.path
                        ),
                    });
                }
                Err(_) => {
                    fs::create_dir_all(path)
                        .map_err(|e| io_error("cannot create directory", &req.path, &e))?;
                    changed = true;
                }
            }
            let md = fs::metadata(path).map_err(|e| io_error("cannot stat", &req.path, &e))?;
            let want_uid = uid.filter(|u| *u != md.uid());
            let want_gid = gid.filter(|g| *g != md.gid());
            if want_uid.is_some() || want_gid.is_some() {
                std::os::unix::fs::chown(path, want_uid, want_gid)
                    .map_err(|e| io_error("cannot chown", &req.path, &e))?;
                changed = true;
            }
            if let Some(m) = req.mode
                && md.mode() & 0o7777 != m
            {
                fs::set_permissions(path, fs::Permissions::from_mode(m))
                    .map_err(|e| io_error("cannot chmod", &req.path, &e))?;
                changed = true;
            }
            Ok(FileStateResult { changed })
        }
    }
}

fn resolve_owner(
    owner: Option<&str>,
    group: Option<&str>,
    path: &str,
) -> Result<(Option<u32>, Option<u32>), AgentError> {
    let lookup = |db: &str, name: &str| {
        id_of(db, name).ok_or_else(|| AgentError {
            code: ErrorCode::NotFound,
            message: format!(
                "cannot set {} of {path}: no such {} {name:?} in /etc/{db}",
                if db == "passwd" { "owner" } else { "group" },
                if db == "passwd" { "user" } else { "group" },
            ),
        })
    };
    let uid = owner.map(|o| lookup("passwd", o)).transpose()?;
    let gid = group.map(|g| lookup("group", g)).transpose()?;
    Ok((uid, gid))
}

/// `name:x:ID:...` lines of /etc/passwd or /etc/group.
fn entries(db: &str) -> Vec<(String, u32)> {
    fs::read_to_string(Path::new("/etc").join(db))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id = f.nth(1)?.parse().ok()?;
            Some((name.to_string(), id))
        })
        .collect()
}

fn name_of(db: &str, id: u32) -> Option<String> {
    entries(db)
        .into_iter()
        .find(|(_, i)| *i == id)
        .map(|(n, _)| n)
}

fn id_of(db: &str, name: &str) -> Option<u32> {
    // A numeric owner is accepted as an id, like chown does.
    name.parse().ok().or_else(|| {
        entries(db)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, i)| i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_stat_read_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.txt").to_string_lossy().into_owned();
        let w = write_file(&WriteFileRequest {
            path: p.clone(),
            content_base64: crate::base64::encode(b"hello\n"),
            mode: Some(0o640),
            owner: Some("root".into()),
            group: Some("0".into()),
        })
        .unwrap();
        let s = stat(&StatRequest {
            path: p.clone(),
            checksum: true,
        })
        .unwrap();
        assert_eq!(s.sha256.as_deref(), Some(w.sha256.as_str()));
        assert_eq!(s.mode, Some(0o640));
        assert_eq!(s.file_type, Some(FileType::File));
        assert_eq!(s.size, Some(6));
        let r = read_file(&ReadFileRequest {
            path: p.clone(),
            max_bytes: 6,
        })
        .unwrap();
        assert_eq!(r.content, "hello\n");
        assert!(
            read_file(&ReadFileRequest {
                path: p,
                max_bytes: 5
            })
            .is_err()
        );
        // No temp files left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn directory_and_absent_report_changes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/c").to_string_lossy().into_owned();
        let req = |state, mode| FileStateRequest {
            path: p.clone(),
            state,
            mode,
            owner: None,
            group: None,
        };
        assert!(
            file_state(&req(DesiredFileState::Directory, Some(0o700)))
                .unwrap()
                .changed
        );
        assert!(
            !file_state(&req(DesiredFileState::Directory, Some(0o700)))
                .unwrap()
                .changed
        );
        assert!(
            file_state(&req(DesiredFileState::Directory, Some(0o755)))
                .unwrap()
                .changed
        );
        fs::write(d.path().join("a/b/c/x"), b"x").unwrap();
        assert!(
            file_state(&req(DesiredFileState::Absent, None))
                .unwrap()
                .changed
        );
        assert!(
            !file_state(&req(DesiredFileState::Absent, None))
                .unwrap()
                .changed
        );
        assert!(
            !stat(&StatRequest {
                path: p,
                checksum: false
            })
            .unwrap()
            .exists
        );
    }

    #[test]
    fn unknown_owner_is_an_error_naming_the_path() {
        let e = write_file(&WriteFileRequest {
            path: "/tmp/rookery-never-written".into(),
            content_base64: String::new(),
            mode: None,
            owner: Some("no-such-user-xyz".into()),
            group: None,
        })
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(
            e.message.contains("/tmp/rookery-never-written"),
            "{}",
            e.message
        );
    }
}
