//! `wait_for`: wait until a TCP `port` listens (or stops) or a `path` exists (or goes away),
//! checked on the host through its agent. For the host's own addresses the listening sockets
//! are read from /proc/net/tcp{,6} (no tools needed); another address is tried with bash's
//! /dev/tcp. Check mode only reports the current state. Never "changed", like Ansible.

use std::time::{Duration, Instant};

use rookery_proto::{ExecRequest, Request, Response, StatRequest};
use serde::Deserialize;
use serde_json::Value;

use super::{
    Action, Change, Flex, Module, ModuleCtx, ModuleError, ModuleResult, Query, RunsOn, parse_args,
    unexpected,
};

pub struct WaitForModule;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    port: Option<Flex>,
    host: Option<String>,
    path: Option<String>,
    state: Option<String>,
    timeout: Option<Flex>,
    delay: Option<Flex>,
    sleep: Option<Flex>,
    msg: Option<String>,
}

impl Module for WaitForModule {
    fn name(&self) -> &'static str {
        "wait_for"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Host
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        let a: Args = parse_args(args)?;
        if a.port.is_some() == a.path.is_some() {
            return Err("give exactly one of `port` or `path`".into());
        }
        match a.state.as_deref() {
            None | Some("started" | "present" | "stopped" | "absent") => Ok(()),
            Some(s) if s.contains("{{") => Ok(()),
            Some(s) => Err(format!(
                "state `{s}` is not supported (started, present, stopped, absent)"
            )),
        }
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        self.check_args(args).map_err(ModuleError::Args)?;
        let a: Args = parse_args(args).map_err(ModuleError::Args)?;
        let port = a
            .port
            .as_ref()
            .map(|p| p.as_u64("port"))
            .transpose()?
            .map(|p| {
                u16::try_from(p).map_err(|_| ModuleError::Args(format!("port {p} is out of range")))
            })
            .transpose()?;
        let want_present = !matches!(a.state.as_deref(), Some("stopped" | "absent"));
        let secs = |f: &Option<Flex>, what: &str, d: u64| -> Result<u64, ModuleError> {
            f.as_ref()
                .map(|x| x.as_u64(what))
                .transpose()
                .map(|v| v.unwrap_or(d))
        };
        Ok(Box::new(WaitAction {
            port,
            host: a.host.unwrap_or_else(|| "127.0.0.1".into()),
            path: a.path,
            want_present,
            timeout: Duration::from_secs(secs(&a.timeout, "timeout", 300)?),
            delay: Duration::from_secs(secs(&a.delay, "delay", 0)?),
            sleep: Duration::from_secs(secs(&a.sleep, "sleep", 1)?.max(1)),
            msg: a.msg,
        }))
    }
}

struct WaitAction {
    port: Option<u16>,
    host: String,
    path: Option<String>,
    want_present: bool,
    timeout: Duration,
    delay: Duration,
    sleep: Duration,
    msg: Option<String>,
}

fn is_local(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1" | "0.0.0.0" | "::")
}

/// True when /proc/net/tcp{,6} text shows a socket listening on `port`.
fn listening(proc_net: &str, port: u16) -> bool {
    let want = format!("{port:04X}");
    proc_net.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // sl local_address rem_address st ...; state 0A = LISTEN.
        f.len() > 3
            && f[3] == "0A"
            && f[1]
                .rsplit(':')
                .next()
                .is_some_and(|p| p.eq_ignore_ascii_case(&want))
    })
}

impl WaitAction {
    fn what(&self) -> String {
        match (&self.path, self.port) {
            (Some(p), _) => format!("path {p}"),
            (None, Some(port)) => format!("port {}:{port}", self.host),
            _ => "nothing".into(),
        }
    }

    async fn present(&self, ctx: &ModuleCtx<'_>) -> Result<bool, ModuleError> {
        let agent = ctx.agent()?;
        if let Some(p) = &self.path {
            return match agent
                .call(Request::Stat(StatRequest {
                    path: p.clone(),
                    checksum: false,
                }))
                .await?
            {
                Response::Stat(s) => Ok(s.exists),
                other => Err(unexpected("stat", other)),
            };
        }
        let port = self.port.unwrap_or_default();
        let argv = if is_local(&self.host) {
            vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; true".to_string(),
            ]
        } else {
            vec![
                "bash".to_string(),
                "-c".to_string(),
                format!("exec 3<>/dev/tcp/{}/{port}", self.host),
            ]
        };
        let r = agent
            .call(Request::Exec(ExecRequest {
                argv,
                stdin: None,
                cwd: None,
                env: vec![],
                timeout_secs: Some(5),
            }))
            .await?;
        let Response::Exec(x) = r else {
            return Err(unexpected("exec", r));
        };
        Ok(if is_local(&self.host) {
            listening(&x.stdout, port)
        } else {
            x.rc == Some(0)
        })
    }
}

#[async_trait::async_trait]
impl Action for WaitAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        if self.delay.is_zero() && self.present(ctx).await? == self.want_present {
            return Ok(Query::Matched(
                ModuleResult::ok()
                    .with("elapsed", 0)
                    .with_msg(format!("{} is ready", self.what())),
            ));
        }
        let mut c = Change::new(vec![format!("wait for {}", self.what())], None);
        c.check_result = ModuleResult {
            skipped: true,
            msg: Some(format!("would wait for {}", self.what())),
            ..Default::default()
        };
        Ok(Query::NeedsChange(c))
    }

    async fn apply(&mut self, ctx: &ModuleCtx<'_>, _: Change) -> Result<ModuleResult, ModuleError> {
        let start = Instant::now();
        tokio::time::sleep(self.delay).await;
        loop {
            if self.present(ctx).await? == self.want_present {
                return Ok(ModuleResult::ok()
                    .with("elapsed", start.elapsed().as_secs())
                    .with_msg(format!("{} is ready", self.what())));
            }
            if start.elapsed() >= self.timeout {
                let mut r = ModuleResult::ok().with("elapsed", start.elapsed().as_secs());
                r.failed = true;
                r.msg = Some(self.msg.clone().unwrap_or_else(|| {
                    format!(
                        "timeout after {}s waiting for {}",
                        self.timeout.as_secs(),
                        self.what()
                    )
                }));
                return Ok(r);
            }
            tokio::time::sleep(self.sleep).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn proc_net_tcp() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue\n   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   1: 0100007F:1F90 0100007F:D2F0 01 00000000:00000000";
        assert!(super::listening(t, 22));
        assert!(!super::listening(t, 8080));
    }
}
