//! Every Kubernetes API call `oob` makes, as a table: the source of truth for the RBAC rules in
//! `deploy/` (a test holds the manifests to exactly this table, and the calls the code really
//! makes against the fake API server to it, both ways). Every call goes through this module's
//! parent (`k8s/`); nothing else in the crate builds a `kube::Api`.

/// Where a call is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Any namespace or cluster-scoped: a ClusterRole.
    Cluster,
    /// One namespace: a Role there.
    Namespace(&'static str),
}

/// One API call: (API group, resource[/subresource], verb, scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Call {
    pub group: &'static str,
    pub resource: &'static str,
    pub verb: &'static str,
    pub scope: Scope,
    /// Only for the kubeadm replacement workflow: granted by `deploy/optional/replacement`.
    pub optional: bool,
}

/// oob's own namespace in the manifests (`service.namespace`): leases, credential Secrets.
pub const OOB_NAMESPACE: &str = "oob-system";

const fn call(group: &'static str, resource: &'static str, verb: &'static str) -> Call {
    Call {
        group,
        resource,
        verb,
        scope: Scope::Cluster,
        optional: false,
    }
}

const fn ns(mut c: Call, namespace: &'static str) -> Call {
    c.scope = Scope::Namespace(namespace);
    c
}

const fn optional(mut c: Call) -> Call {
    c.optional = true;
    c
}

/// The table. Comments name the code that makes each call.
pub const CALLS: &[Call] = &[
    // KubeNodeOps::get (and read-modify-write of taints), the ladder's probes
    call("", "nodes", "get"),
    // node_annotations: the inventory from annotations; NodeCache: the watch's (re)lists
    call("", "nodes", "list"),
    // NodeCache: one watch for the fleet's Nodes (rounds read them from memory)
    call("", "nodes", "watch"),
    // KubeNodeOps: cordon, taints, annotations (merge patches)
    call("", "nodes", "patch"),
    // KubeNodeOps::set_condition (strategic merge on the status subresource)
    call("", "nodes/status", "patch"),
    // drain: the node's pods (all namespaces, field selector spec.nodeName)
    call("", "pods", "list"),
    // drain: waiting for evicted pods to be gone
    call("", "pods", "get"),
    // drain: force deletion, only with a verified power off
    call("", "pods", "delete"),
    // drain: eviction (the PodDisruptionBudget is enforced by the API server)
    call("", "pods/eviction", "create"),
    // KubeNodeOps::publish: events about nodes live in `default`
    ns(call("events.k8s.io", "events", "create"), "default"),
    // LeaseLock: leader election and the per-node lock
    ns(call("coordination.k8s.io", "leases", "get"), OOB_NAMESPACE),
    ns(
        call("coordination.k8s.io", "leases", "create"),
        OOB_NAMESPACE,
    ),
    ns(
        call("coordination.k8s.io", "leases", "update"),
        OOB_NAMESPACE,
    ),
    // secret_password: BMC credentials by reference, only in oob's namespace
    ns(call("", "secrets", "get"), OOB_NAMESPACE),
    // KubeEpisodes: the shared journal and Node Healthcheck's requests (list: a new
    // leader's adoption and each tick's requests; get: re-read after a conflict; create:
    // oob's own episode; status update: step records, position, conditions; delete: oob's
    // own episode once the node is healthy, never one NHC made)
    ns(call("oob.dev", "oobremediations", "list"), OOB_NAMESPACE),
    ns(call("oob.dev", "oobremediations", "get"), OOB_NAMESPACE),
    ns(call("oob.dev", "oobremediations", "create"), OOB_NAMESPACE),
    ns(call("oob.dev", "oobremediations", "delete"), OOB_NAMESPACE),
    ns(
        call("oob.dev", "oobremediations/status", "update"),
        OOB_NAMESPACE,
    ),
    // join::cluster_info: the CA and API server address for `kubeadm join`
    ns(call("", "configmaps", "get"), "kube-public"),
    // join::create_token: the bootstrap token Secret (replacement workflow only)
    optional(ns(call("", "secrets", "create"), "kube-system")),
    // lease::medik8s_acquire/release: the node's Lease where the medik8s operators look,
    // taken with oob's per-node lock (without this Role oob acts on its own lock alone)
    optional(ns(
        call("coordination.k8s.io", "leases", "get"),
        "medik8s-leases",
    )),
    optional(ns(
        call("coordination.k8s.io", "leases", "create"),
        "medik8s-leases",
    )),
    optional(ns(
        call("coordination.k8s.io", "leases", "update"),
        "medik8s-leases",
    )),
    optional(ns(
        call("coordination.k8s.io", "leases", "delete"),
        "medik8s-leases",
    )),
    // KubeRejoin::token: a resumed replacement reads its bootstrap token back by id
    optional(ns(call("", "secrets", "get"), "kube-system")),
    // KubeNodeOps::delete: the old Node object of a replaced machine
    optional(call("", "nodes", "delete")),
];

/// The call a REST request is, from its method and path (query ignored); `None` for
/// anything `oob` is not expected to send.
pub fn classify(method: &str, path: &str) -> Option<(Call, Option<String>)> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let watching = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // (group, namespace, resource, name, subresource)
    let (group, rest): (&str, &[&str]) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (group, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (resource, named, sub) = match rest {
        [r] => (*r, false, None),
        [r, _name] => (*r, true, None),
        [r, _name, s] => (*r, true, Some(*s)),
        _ => return None,
    };
    let verb = match (method, named, sub) {
        ("GET", false, None) if watching => "watch",
        ("GET", false, None) => "list",
        ("GET", true, _) => "get",
        ("POST", false, None) => "create",
        ("POST", true, Some(_)) => "create",
        ("PUT", true, _) => "update",
        ("PATCH", true, _) => "patch",
        ("DELETE", true, _) => "delete",
        _ => return None,
    };
    let resource_full = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_owned(),
    };
    CALLS
        .iter()
        .find(|c| {
            c.group == group
                && c.resource == resource_full
                && c.verb == verb
                && match c.scope {
                    Scope::Cluster => true,
                    Scope::Namespace(n) => namespace.as_deref() == Some(n),
                }
        })
        .map(|c| (*c, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_calls_and_strangers_to_none() {
        let get = |m: &str, p: &str| classify(m, p).map(|(c, _)| (c.resource, c.verb));
        assert_eq!(get("GET", "/api/v1/nodes/node-1"), Some(("nodes", "get")));
        assert_eq!(
            get("GET", "/api/v1/nodes?labelSelector=x"),
            Some(("nodes", "list"))
        );
        assert_eq!(
            get("PATCH", "/api/v1/nodes/node-1/status"),
            Some(("nodes/status", "patch"))
        );
        assert_eq!(
            get("POST", "/api/v1/namespaces/apps/pods/web-0/eviction"),
            Some(("pods/eviction", "create"))
        );
        assert_eq!(
            get(
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/oob-system/leases/oob-leader"
            ),
            Some(("leases", "update"))
        );
        // Right resource, wrong namespace: not granted.
        assert_eq!(get("GET", "/api/v1/namespaces/default/secrets/x"), None);
        assert_eq!(get("POST", "/api/v1/namespaces/default/secrets"), None);
        assert_eq!(
            get("GET", "/api/v1/namespaces/kube-system/configmaps/x"),
            None
        );
        assert_eq!(
            get("GET", "/api/v1/nodes?resourceVersion=5&watch=true"),
            Some(("nodes", "watch"))
        );
        assert_eq!(get("PUT", "/api/v1/nodes/node-1"), None);
        assert_eq!(get("GET", "/version"), None);
    }
}
