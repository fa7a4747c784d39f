//! `file`: make `path` a directory (`state: directory`, with `mode`/`owner`/`group`) or make
//! it go away (`state: absent`). Other Ansible states (touch, link, hard, file) are refused
//! with a clear message rather than half-implemented.

use rookery_proto::{DesiredFileState, FileStateRequest, FileType, Request, Response, StatRequest};
use serde::Deserialize;
use serde_json::Value;

use super::{
    Action, Change, Flex, Module, ModuleCtx, ModuleError, ModuleResult, Query, RunsOn, parse_args,
    parse_mode, unexpected,
};

pub struct FileModule;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(alias = "dest", alias = "name")]
    path: String,
    state: Option<String>,
    mode: Option<Flex>,
    owner: Option<String>,
    group: Option<String>,
}

impl Module for FileModule {
    fn name(&self) -> &'static str {
        "file"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Host
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        let a: Args = parse_args(args)?;
        match a.state.as_deref() {
            None | Some("directory") | Some("absent") => Ok(()),
            Some(s) if s.contains("{{") => Ok(()),
            Some(s) => Err(format!(
                "state `{s}` is not supported (rookery's file module does `directory` and `absent`)"
            )),
        }
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        self.check_args(args).map_err(ModuleError::Args)?;
        let a: Args = parse_args(args).map_err(ModuleError::Args)?;
        let state = match a.state.as_deref() {
            Some("absent") => DesiredFileState::Absent,
            Some("directory") => DesiredFileState::Directory,
            None => {
                return Err(ModuleError::Args(
                    "give `state: directory` or `state: absent`".into(),
                ));
            }
            Some(s) => return Err(ModuleError::Args(format!("state `{s}` is not supported"))),
        };
        if a.path.trim().is_empty() || a.path.trim() == "/" {
            return Err(ModuleError::Args(format!("refusing path `{}`", a.path)));
        }
        Ok(Box::new(FileAction {
            path: a.path,
            state,
            mode: a.mode.as_ref().map(parse_mode).transpose()?,
            owner: a.owner,
            group: a.group,
        }))
    }
}

struct FileAction {
    path: String,
    state: DesiredFileState,
    mode: Option<u32>,
    owner: Option<String>,
    group: Option<String>,
}

#[async_trait::async_trait]
impl Action for FileAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let r = ctx
            .agent()?
            .call(Request::Stat(StatRequest {
                path: self.path.clone(),
                checksum: false,
            }))
            .await?;
        let Response::Stat(st) = r else {
            return Err(unexpected("stat", r));
        };
        let mut changes = Vec::new();
        match self.state {
            DesiredFileState::Absent => {
                if st.exists {
                    changes.push("remove".to_string());
                }
            }
            DesiredFileState::Directory => {
                if !st.exists {
                    changes.push("create directory".to_string());
                } else if st.file_type != Some(FileType::Directory) {
                    return Err(ModuleError::Failed(format!(
                        "`{}` exists and is not a directory",
                        self.path
                    )));
                } else {
                    if let (Some(m), Some(have)) = (self.mode, st.mode)
                        && have & 0o7777 != m
                    {
                        changes.push(format!("mode {:04o} -> {m:04o}", have & 0o7777));
                    }
                    if let Some(o) = &self.owner
                        && st.owner.as_deref() != Some(o.as_str())
                        && st.uid.map(|u| u.to_string()).as_deref() != Some(o.as_str())
                    {
                        changes.push(format!("owner -> {o}"));
                    }
                    if let Some(g) = &self.group
                        && st.group.as_deref() != Some(g.as_str())
                        && st.gid.map(|u| u.to_string()).as_deref() != Some(g.as_str())
                    {
                        changes.push(format!("group -> {g}"));
                    }
                }
            }
        }
        let state = match self.state {
            DesiredFileState::Absent => "absent",
            DesiredFileState::Directory => "directory",
        };
        if changes.is_empty() {
            return Ok(Query::Matched(
                ModuleResult::ok()
                    .with("path", self.path.clone())
                    .with("state", state),
            ));
        }
        let mut c = Change::new(changes, None);
        c.check_result = c
            .check_result
            .clone()
            .with("path", self.path.clone())
            .with("state", state);
        Ok(Query::NeedsChange(c))
    }

    async fn apply(
        &mut self,
        ctx: &ModuleCtx<'_>,
        change: Change,
    ) -> Result<ModuleResult, ModuleError> {
        let r = ctx
            .agent()?
            .call(Request::FileState(FileStateRequest {
                path: self.path.clone(),
                state: self.state,
                mode: self.mode,
                owner: self.owner.clone(),
                group: self.group.clone(),
            }))
            .await?;
        let Response::FileState(_) = r else {
            return Err(unexpected("file_state", r));
        };
        Ok(ModuleResult::changed()
            .with("path", self.path.clone())
            .with_msg(change.changes.join(", ")))
    }
}
