//! `k8s_info`: get or list objects, by name, label and field selectors.

use super::*;

pub(super) struct K8sInfoModule {
    pub(super) env: Arc<KubeEnv>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct K8sInfoArgs {
    api_version: Option<String>,
    kind: String,
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    label_selectors: Vec<String>,
    #[serde(default)]
    field_selectors: Vec<String>,
    kubeconfig: Option<String>,
    context: Option<String>,
    request_timeout: Option<Flex>,
}

struct K8sInfoAction {
    env: Arc<KubeEnv>,
    id: ObjectRef,
    labels: Vec<String>,
    fields: Vec<String>,
    conn: Conn,
}

impl Module for K8sInfoModule {
    fn name(&self) -> &'static str {
        "k8s_info"
    }
    fn runs_on(&self) -> RunsOn {
        RunsOn::Controller
    }
    fn check_args(&self, args: &Value) -> Result<(), String> {
        parse_args::<K8sInfoArgs>(args).map(|_| ())
    }
    fn validate(&self, args: &Value) -> Result<Box<dyn Action>, ModuleError> {
        let a: K8sInfoArgs = parse_args(args).map_err(ModuleError::Args)?;
        Ok(Box::new(K8sInfoAction {
            env: self.env.clone(),
            id: ObjectRef {
                api_version: opt(a.api_version).unwrap_or_else(|| "v1".into()),
                kind: a.kind,
                name: opt(a.name).unwrap_or_default(),
                namespace: opt(a.namespace),
            },
            labels: a.label_selectors,
            fields: a.field_selectors,
            conn: Conn::new(a.kubeconfig, a.context, &a.request_timeout)?,
        }))
    }
}

#[async_trait::async_trait]
impl Action for K8sInfoAction {
    async fn query(&mut self, ctx: &ModuleCtx<'_>) -> Result<Query, ModuleError> {
        let cluster = self.env.cluster(&self.conn, ctx.vars).await?;
        let resolver = Resolver::new(cluster.clone());
        let found = resolver
            .resolve(&gvk_of(&self.id))
            .await
            .map_err(kube_failed)?;
        let Some((ar, caps)) = found else {
            // kubernetes.core.k8s_info's answer for a kind the cluster does not serve.
            return Ok(Query::Matched(
                ModuleResult::ok()
                    .with_msg(format!(
                        "the cluster does not serve {} {}",
                        self.id.api_version, self.id.kind
                    ))
                    .with("api_found", false)
                    .with("resources", Value::Array(vec![])),
            ));
        };
        let api = resolver.api(&ar, &caps, self.id.namespace.as_deref());
        let api = match (&caps.scope, &self.id.namespace) {
            // No namespace: every namespace, as kubectl get -A.
            (kube::discovery::Scope::Namespaced, None) => {
                kube::Api::all_with(cluster.client.clone(), &ar)
            }
            _ => api,
        };
        let resources: Vec<Value> = if self.id.name.is_empty() {
            let mut lp = ListParams::default();
            if !self.labels.is_empty() {
                lp = lp.labels(&self.labels.join(","));
            }
            if !self.fields.is_empty() {
                lp = lp.fields(&self.fields.join(","));
            }
            let list = cluster
                .call("listing", &self.id.kind, api.list(&lp))
                .await
                .map_err(kube_failed)?;
            list.items
                .into_iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .map(|mut v| {
                    // List items carry no apiVersion/kind; Ansible's results do.
                    if let Some(m) = v.as_object_mut() {
                        m.insert("apiVersion".into(), json!(ar.api_version));
                        m.insert("kind".into(), json!(ar.kind));
                    }
                    v
                })
                .collect()
        } else {
            let got = cluster
                .call("reading", &self.id, api.get_opt(&self.id.name))
                .await
                .map_err(kube_failed)?;
            got.and_then(|o| serde_json::to_value(o).ok())
                .into_iter()
                .collect()
        };
        let resources: Vec<Value> = resources.into_iter().map(mask_secret).collect();
        Ok(Query::Matched(
            ModuleResult::ok()
                .with_msg(format!("{} {}(s) found", resources.len(), self.id.kind))
                .with("api_found", true)
                .with("resources", Value::Array(resources)),
        ))
    }
    async fn apply(&mut self, _: &ModuleCtx<'_>, _: Change) -> Result<ModuleResult, ModuleError> {
        Ok(ModuleResult::ok())
    }
}
