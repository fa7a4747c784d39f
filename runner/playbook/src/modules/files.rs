//! `copy` and `template`: put bytes at `dest` on the host with `mode`/`owner`/`group`.
//! The query compares the sha256 the agent computes with the sha256 of the wanted bytes, and
//! the metadata, so an unchanged file is never rewritten; `--diff` shows before/after text.
//! `copy` takes `src` (on the control machine, relative to the playbook's `files/` or its
//! directory) or `content`; `template` renders `src` (from `templates/` or the playbook
//! directory) with the task's variables.

use std::path::{Path, PathBuf};

use base64::Engine;
use rookery_proto::{FileType, ReadFileRequest, Request, Response, StatRequest, WriteFileRequest};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    Action, Change, FileDiff, Flex, Module, ModuleCtx, ModuleError, ModuleResult, Query, RunsOn,
    parse_args, parse_mode, unexpected,
};

/// Files larger than this are not read back for `--diff`.
const DIFF_MAX: u64 = 256 * 1024;

pub struct CopyModule {
    pub template: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    src: Option<String>,
    content: Option<Flex>,
    dest: String,
    mode: Option<Flex>,
    owner: Option<String>,
    group: Option<String>,
    /// Ansible's default: replace a differing file.
    force: Option<Flex>,
}

impl Module for CopyModule {
    fn name(&self) -> &'static str {
        if self.template { "template" } else { "copy" }
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Host
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        let a: Args = parse_args(args)?;
        if self.template {
            if a.src.is_none() || a.content.is_some() {
                return Err("template needs `src` (a template file) and `dest`".into());
            }
        } else if a.src.is_some() == a.content.is_some() {
            return Err("copy needs exactly one of `src` or `content`".into());
        }
        Ok(())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        self.check_args(args).map_err(ModuleError::Args)?;
        let a: Args = parse_args(args).map_err(ModuleError::Args)?;
        let mode = a.mode.as_ref().map(parse_mode).transpose()?;
        let force = a
            .force
            .as_ref()
            .map(|f| f.as_bool("force"))
            .transpose()?
            .unwrap_or(true);
        if a.dest.trim().is_empty() {
            return Err(ModuleError::Args("`dest` is empty".into()));
        }
        Ok(Box::new(CopyAction {
            template: self.template,
            src: a.src,
            content: a.content.map(|c| c.text()),
            dest: a.dest,
            mode,
            owner: a.owner,
            group: a.group,
            force,
            bytes: None,
            target: String::new(),
        }))
    }
}

struct CopyAction {
    template: bool,
    src: Option<String>,
    content: Option<String>,
    dest: String,
    mode: Option<u32>,
    owner: Option<String>,
    group: Option<String>,
    force: bool,
    /// Wanted bytes, computed by `query`.
    bytes: Option<Vec<u8>>,
    /// Final path on the host (dest, or dest/basename(src) when dest is a directory).
    target: String,
}

/// `src` on the control machine: absolute, or under `<dir>/<sub>/`, or under `<dir>/`.
fn find_src(dir: &Path, sub: &str, src: &str) -> PathBuf {
    let p = Path::new(src);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let under = dir.join(sub).join(p);
    if under.is_file() {
        return under;
    }
    dir.join(p)
}

fn read_local(path: &Path) -> Result<Vec<u8>, ModuleError> {
    std::fs::read(path).map_err(|source| ModuleError::LocalFile {
        path: path.to_path_buf(),
        source,
    })
}

/// A unified diff of two texts, or a note when either is not text.
pub(crate) fn text_diff(path: &str, before: Option<&[u8]>, after: &[u8]) -> FileDiff {
    let b = before.map(std::str::from_utf8);
    let a = std::str::from_utf8(after);
    let unified = match (b, a) {
        (Some(Err(_)), _) | (_, Err(_)) => "(binary content differs)\n".to_string(),
        (b, Ok(a)) => {
            let b = b.and_then(Result::ok).unwrap_or("");
            similar::TextDiff::from_lines(b, a)
                .unified_diff()
                .context_radius(3)
                .header(&format!("before: {path}"), &format!("after: {path}"))
                .to_string()
        }
    };
    FileDiff {
        path: path.to_string(),
        unified,
    }
}

#[async_trait::async_trait]
impl Action for CopyAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let bytes = match (&self.src, &self.content) {
            (_, Some(c)) => c.clone().into_bytes(),
            (Some(src), None) if self.template => {
                let path = find_src(ctx.playbook_dir, "templates", src);
                let text = String::from_utf8(read_local(&path)?).map_err(|_| {
                    ModuleError::Args(format!("template `{}` is not UTF-8 text", path.display()))
                })?;
                ctx.templar
                    .render_str(&text, ctx.vars)
                    .map_err(|source| ModuleError::Template { path, source })?
                    .into_bytes()
            }
            (Some(src), None) => read_local(&find_src(ctx.playbook_dir, "files", src))?,
            (None, None) => return Err(ModuleError::Args("nothing to copy".into())),
        };
        let want_sha = hex::encode(Sha256::digest(&bytes));
        let agent = ctx.agent()?;
        let stat = |path: String| async {
            match agent
                .call(Request::Stat(StatRequest {
                    path,
                    checksum: true,
                }))
                .await?
            {
                Response::Stat(s) => Ok(s),
                other => Err(unexpected("stat", other)),
            }
        };
        let mut target = self.dest.clone();
        let mut st = stat(target.clone()).await?;
        if st.file_type == Some(FileType::Directory) || self.dest.ends_with('/') {
            let base = self
                .src
                .as_deref()
                .and_then(|s| Path::new(s).file_name())
                .map(|n| n.to_string_lossy().to_string())
                .ok_or_else(|| {
                    ModuleError::Args(format!(
                        "dest `{}` is a directory; with `content` give a file path",
                        self.dest
                    ))
                })?;
            target = format!("{}/{base}", self.dest.trim_end_matches('/'));
            st = stat(target.clone()).await?;
        }
        let mut changes = Vec::new();
        if !st.exists {
            changes.push("create".to_string());
        } else {
            if st.file_type != Some(FileType::File) {
                return Err(ModuleError::Failed(format!(
                    "`{target}` exists and is not a regular file"
                )));
            }
            if st.sha256.as_deref() != Some(want_sha.as_str()) && self.force {
                changes.push("content".to_string());
            }
            if let (Some(m), Some(have)) = (self.mode, st.mode)
                && have & 0o7777 != m
            {
                changes.push(format!("mode {:04o} -> {m:04o}", have & 0o7777));
            }
            if let Some(o) = &self.owner
                && st.owner.as_deref() != Some(o.as_str())
                && st.uid.map(|u| u.to_string()).as_deref() != Some(o.as_str())
            {
                changes.push(format!(
                    "owner {} -> {o}",
                    st.owner.clone().unwrap_or_default()
                ));
            }
            if let Some(g) = &self.group
                && st.group.as_deref() != Some(g.as_str())
                && st.gid.map(|u| u.to_string()).as_deref() != Some(g.as_str())
            {
                changes.push(format!(
                    "group {} -> {g}",
                    st.group.clone().unwrap_or_default()
                ));
            }
        }
        let result = |r: ModuleResult| {
            r.with("dest", target.clone())
                .with("checksum", want_sha.clone())
                .with("size", bytes.len())
        };
        if changes.is_empty() {
            self.target = target.clone();
            return Ok(Query::Matched(result(ModuleResult::ok())));
        }
        let diff = if ctx.diff && (changes.iter().any(|c| c == "create" || c == "content")) {
            let before = if st.exists && st.size.unwrap_or(0) <= DIFF_MAX {
                match agent
                    .call(Request::ReadFile(ReadFileRequest {
                        path: target.clone(),
                        max_bytes: DIFF_MAX,
                    }))
                    .await?
                {
                    Response::ReadFile(r) if r.is_utf8 => Some(r.content.into_bytes()),
                    _ => None,
                }
            } else {
                None
            };
            if st.exists && before.is_none() {
                Some(FileDiff {
                    path: target.clone(),
                    unified: "(old content is binary or too large to show)\n".into(),
                })
            } else {
                Some(text_diff(&target, before.as_deref(), &bytes))
            }
        } else {
            None
        };
        let mut change = Change::new(changes, diff);
        change.check_result = result(change.check_result.clone());
        self.target = target;
        self.bytes = Some(bytes);
        Ok(Query::NeedsChange(change))
    }

    async fn apply(
        &mut self,
        ctx: &ModuleCtx<'_>,
        change: Change,
    ) -> Result<ModuleResult, ModuleError> {
        let bytes = self.bytes.take().unwrap_or_default();
        let r = ctx
            .agent()?
            .call(Request::WriteFile(WriteFileRequest {
                path: self.target.clone(),
                content_base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
                mode: self.mode,
                owner: self.owner.clone(),
                group: self.group.clone(),
            }))
            .await?;
        let Response::WriteFile(w) = r else {
            return Err(unexpected("write_file", r));
        };
        let mut res = ModuleResult::changed()
            .with("dest", self.target.clone())
            .with("checksum", w.sha256)
            .with("size", bytes.len())
            .with_msg(change.changes.join(", "));
        res.diff = change.diff;
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_text() {
        let d = text_diff("/etc/x", Some(b"a\nb\n"), b"a\nc\n");
        assert!(d.unified.contains("-b\n+c"), "{}", d.unified);
        let d = text_diff("/etc/x", None, b"new\n");
        assert!(d.unified.contains("+new"), "{}", d.unified);
    }
}
