//! `kubeconfig`: reach the cluster as `rookery apply` does (a K3s server's kubeconfig fetched over SSH, or a file).

use super::*;

pub(super) struct KubeconfigModule {
    pub(super) env: Arc<KubeEnv>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KubeconfigArgs {
    from_host: Option<String>,
    path: Option<String>,
    api_endpoint: Option<String>,
    kubeconfig: Option<String>,
    context: Option<String>,
    request_timeout: Option<Flex>,
    stack: Option<String>,
}

struct KubeconfigAction {
    env: Arc<KubeEnv>,
    a: KubeconfigArgs,
    timeout: u64,
}

impl Module for KubeconfigModule {
    fn name(&self) -> &'static str {
        "kubeconfig"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        parse_args::<KubeconfigArgs>(args).map(|_| ())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        let a: KubeconfigArgs = parse_args(args).map_err(ModuleError::Args)?;
        let timeout = number(&a.request_timeout, "request_timeout", 30)?;
        let a = KubeconfigArgs {
            from_host: opt(a.from_host),
            path: opt(a.path),
            api_endpoint: opt(a.api_endpoint),
            kubeconfig: opt(a.kubeconfig),
            context: opt(a.context),
            request_timeout: None,
            stack: opt(a.stack),
        };
        if a.from_host.is_some() && a.kubeconfig.is_some() {
            return Err(ModuleError::Args(
                "give `from_host` or `kubeconfig`, not both".into(),
            ));
        }
        Ok(Box::new(KubeconfigAction {
            env: self.env.clone(),
            a,
            timeout,
        }))
    }
}

#[async_trait::async_trait]
impl Action for KubeconfigAction {
    /// Reads only the cluster; the fetched file is stored (0600) even in check mode, because
    /// the tasks after it need it for their dry runs.
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let stack: Option<Stack> = match &self.a.stack {
            Some(p) => {
                let p = resolve_path(ctx.playbook_dir, p);
                Some(rookery_stack::yaml::load(&p).map_err(|e| {
                    ModuleError::Failed(format!(
                        "stack `{}`: {}",
                        p.display(),
                        rookery_diagnostic::one_line(&e)
                    ))
                })?)
            }
            None => None,
        };
        let args = ClusterArgs {
            kubeconfig: self.a.kubeconfig.as_ref().map(PathBuf::from),
            context: self.a.context.clone(),
            kubeconfig_from: self.a.from_host.clone(),
            api_endpoint: self.a.api_endpoint.clone(),
            request_timeout: self.timeout,
        };
        let fetched = self.a.from_host.is_some()
            || (self.a.kubeconfig.is_none()
                && std::env::var_os("KUBECONFIG").is_none()
                && stack.as_ref().is_some_and(|s| s.kubeconfig.is_some()));
        let host = self.a.from_host.clone().or_else(|| {
            stack
                .as_ref()
                .and_then(|s| s.kubeconfig.as_ref())
                .map(|k| k.from_host.clone())
        });
        let before = host
            .as_ref()
            .filter(|_| fetched)
            .and_then(|h| std::fs::read(rookery_kube::kubeconfig::store_path(h)).ok());
        let (_, inventory) = self.env.inventory()?;
        let quiet = Output {
            quiet: true,
            ..self.env.out
        };
        let file = match (&self.a.from_host, &self.a.path) {
            // `path`: where the K3s server keeps it (the stack's `kubeconfig.path`).
            (Some(h), Some(path)) => {
                let endpoint = self.a.api_endpoint.clone().or_else(|| {
                    stack
                        .as_ref()
                        .and_then(|s| s.kubeconfig.as_ref())
                        .and_then(|k| k.api_endpoint.clone())
                });
                Some(
                    crate::cluster::fetch_kubeconfig(
                        inventory,
                        h,
                        endpoint.as_deref(),
                        Some(path),
                        &self.env.ssh,
                        &quiet,
                    )
                    .await
                    .map_err(failure)?,
                )
            }
            _ => crate::cluster::kubeconfig_file(
                &args,
                stack.as_ref(),
                Some(inventory),
                &self.env.ssh,
                &quiet,
            )
            .await
            .map_err(failure)?,
        };
        let changed = fetched
            && match &file {
                Some(f) => std::fs::read(f).ok() != before,
                None => false,
            };
        let conn = Conn {
            kubeconfig: file.as_ref().map(|p| p.display().to_string()),
            context: self.a.context.clone(),
            request_timeout: self.timeout,
        };
        let cluster = self.env.cluster(&conn, &Value::Null).await?;
        let mut facts = Map::new();
        facts.insert(
            VAR_KUBECONFIG.into(),
            conn.kubeconfig
                .clone()
                .map(Value::String)
                .unwrap_or_default(),
        );
        facts.insert(
            VAR_CONTEXT.into(),
            self.a
                .context
                .clone()
                .map(Value::String)
                .unwrap_or_default(),
        );
        let what = match (&host, fetched) {
            (Some(h), true) => format!("fetched from {h}, "),
            _ => String::new(),
        };
        let mut r = if changed {
            ModuleResult::changed()
        } else {
            ModuleResult::ok()
        }
        .with_msg(format!(
            "{what}API server {} answers{}",
            cluster.server,
            conn.kubeconfig
                .as_ref()
                .map(|k| format!(" (kubeconfig {k})"))
                .unwrap_or_default()
        ))
        .with("server", cluster.server.clone())
        .with("kubeconfig", facts[VAR_KUBECONFIG].clone())
        .with("context", facts[VAR_CONTEXT].clone());
        r.facts = Some(facts);
        Ok(Query::Matched(r))
    }
    async fn apply(&mut self, _: &ModuleCtx<'_>, _: Change) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::ok())
    }
}
