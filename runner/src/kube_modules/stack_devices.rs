//! `prepare_devices: {stack: FILE}`: the devices the stack plan puts on a host.

use super::*;

pub(super) struct StackDeviceSource {
    pub(super) env: Arc<KubeEnv>,
}

impl StackDevices for StackDeviceSource {
    fn selections(
        &self,
        stack: &Path,
        host: &str,
        facts: &rookery_proto::HostFacts,
    ) -> Result<Vec<rookery_devices::spec::Selection>, String> {
        let (_, inventory) = self.env.inventory().map_err(|e| e.to_string())?;
        let stack_model: Stack = rookery_stack::yaml::load(stack).map_err(|e| {
            format!(
                "stack `{}`: {}",
                stack.display(),
                rookery_diagnostic::one_line(&e)
            )
        })?;
        let facts = [(host.to_string(), facts.clone())];
        let cluster = stack_plan(&stack_model, stack, inventory, &facts)?;
        // Only this host's facts are at hand: a node matched to it by inventory name while
        // its hostname differs might be another host's by hostname. Refuse rather than guess.
        for n in &cluster.nodes {
            if let NodeMatch::HostnameDiffers { host: h, hostname } = &n.matched
                && h == host
            {
                return Err(format!(
                    "{}: stack node `{}` is inventory host {host}, whose hostname is `{hostname}`; \
                     run `rookery prepare --stack` (it sees every host) or name the node by its \
                     hostname",
                    n.path, n.name
                ));
            }
        }
        Ok(hosts::prepare_selections(&cluster, host))
    }
}

/// The stack's nodes and devices resolved against the inventory and the facts at hand, by
/// the matcher `rookery plan` uses (one function for `prepare --stack` and the playbook).
pub fn stack_plan(
    stack: &Stack,
    stack_path: &Path,
    inventory: &Inventory,
    facts: &[(String, rookery_proto::HostFacts)],
) -> Result<hosts::PlannedCluster, String> {
    let all = inventory
        .select("all")
        .map_err(|e| format!("inventory: {e}"))?;
    let mut inputs = Vec::with_capacity(all.len());
    for h in all {
        let devices = rookery_devices::spec::parse_host_specs(
            &h.name,
            h.vars.get(rookery_devices::spec::VAR),
        )
        .map_err(|e| e.to_string())?;
        inputs.push(HostInput {
            devices,
            facts: facts
                .iter()
                .find(|(n, _)| *n == h.name)
                .map(|(_, f)| f.clone()),
            ..HostInput::new(h.name.clone())
        });
    }
    let selection_hosts = match stack
        .ceph_cluster
        .storage
        .device_selection
        .as_ref()
        .and_then(|s| s.hosts.as_deref())
    {
        Some(pattern) => Some(
            inventory
                .select(pattern)
                .map_err(|e| {
                    format!(
                        "{}: cephCluster.storage.deviceSelection.hosts: {e}",
                        stack_path.display()
                    )
                })?
                .iter()
                .map(|h| h.name.clone())
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    Ok(hosts::plan_cluster(
        stack,
        &inputs,
        selection_hosts.as_deref(),
        FactsSource::Probe,
    ))
}
