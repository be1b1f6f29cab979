//! The replacement workflow's pure parts: what of a Node oob restores after the machine
//! rejoined (and what it leaves to the kubelet, kubeadm and the controllers), etcd's member
//! list and the quorum rule for removing a member, and the commands run on the hosts. The
//! steps themselves are the executor's (`executor/replace.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::k8s::NodeInfo;

/// The workflow's steps in order; each is journaled under `NODE/EPISODE/replace-STEP`.
pub const STEPS: [&str; 12] = [
    "record",
    "identity",
    "etcd-member",
    "delete-node",
    "token",
    "reset",
    "join",
    "registered",
    "restore",
    "health",
    "uncordon",
    "close",
];

/// Label prefixes owned by the kubelet, kubeadm, cloud providers or node-feature-discovery:
/// they come back with the new registration (or must be computed again), never restored.
const OWNED_LABELS: &[&str] = &[
    "kubernetes.io/",
    "beta.kubernetes.io/",
    "node.kubernetes.io/",
    "topology.kubernetes.io/",
    "failure-domain.beta.kubernetes.io/",
    "feature.node.kubernetes.io/",
    "oob.dev/",
];

/// Annotation prefixes written by the kubelet, kubeadm, CSI, CNI plugins and oob itself.
const OWNED_ANNOTATIONS: &[&str] = &[
    "kubeadm.alpha.kubernetes.io/",
    "node.alpha.kubernetes.io/",
    "volumes.kubernetes.io/",
    "csi.volume.kubernetes.io/",
    "kubectl.kubernetes.io/",
    "flannel.alpha.coreos.com/",
    "projectcalico.org/",
    "cilium.io/",
    "io.cilium.",
    "oob.dev/",
];

/// Taints placed by the node lifecycle controller, the cloud provider, kubeadm (the
/// control-plane taint comes back with `kubeadm join --control-plane`) and oob.
const OWNED_TAINTS: &[&str] = &[
    "node.kubernetes.io/",
    "node.cloudprovider.kubernetes.io/",
    "node-role.kubernetes.io/control-plane",
    "oob.dev/",
];

fn owned(key: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| key.starts_with(p))
}

/// A taint as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptTaint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

/// What step 1 records of the Node before it is deleted: what oob restores once the machine
/// rejoined, and the board it was. Journaled as the step's outcome, so that a resumed
/// replacement restores what the Node had, not what the new registration has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The Node existed when the replacement started.
    pub existed: bool,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub taints: Vec<KeptTaint>,
    /// The board the Node ran on (`status.nodeInfo.systemUUID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_uuid: Option<String>,
    /// Labelled `node-role.kubernetes.io/control-plane`: the join is a control-plane join
    /// and its etcd member is removed first.
    pub control_plane: bool,
    /// The host's address while the Node still had it (SSH once the Node is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Someone else had cordoned the Node: it stays cordoned after the rejoin.
    #[serde(default)]
    pub cordoned_by_others: bool,
}

impl Kept {
    /// What of `node` is restored after the rejoin (see the `OWNED_*` lists for what is not).
    pub fn of(node: &NodeInfo) -> Self {
        Self {
            existed: true,
            labels: node
                .labels
                .iter()
                .filter(|(k, _)| !owned(k, OWNED_LABELS))
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect(),
            annotations: node
                .annotations
                .iter()
                .filter(|(k, _)| !owned(k, OWNED_ANNOTATIONS))
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect(),
            taints: node
                .taints
                .iter()
                .filter(|t| !owned(&t.key, OWNED_TAINTS))
                .map(|t| KeptTaint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: t.effect.clone(),
                })
                .collect(),
            system_uuid: node.system_uuid.clone(),
            control_plane: node
                .labels
                .contains_key(crate::remedy::guard::CONTROL_PLANE_LABEL),
            host: None,
            cordoned_by_others: node.unschedulable
                && !node
                    .annotations
                    .contains_key(crate::remedy::executor::CORDONED_ANNOTATION),
        }
    }
}

/// One etcd member as `etcdctl member list -w json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    #[serde(rename = "ID")]
    pub id: u64,
    /// Empty for a member added but never started.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    /// Where `endpoint health --cluster` asks it.
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub learner: bool,
}

impl Member {
    /// The ID as `etcdctl member remove` takes it (hexadecimal).
    pub fn hex_id(&self) -> String {
        format!("{:x}", self.id)
    }
}

#[derive(Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
}

/// Parse `etcdctl member list -w json`.
pub fn parse_members(text: &str) -> Result<Vec<Member>, String> {
    serde_json::from_str::<MemberList>(text.trim())
        .map(|l| l.members)
        .map_err(|e| format!("etcdctl's member list is not the JSON it prints: {e}"))
}

/// One line of `etcdctl endpoint health --cluster -w json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EndpointHealth {
    pub endpoint: String,
    #[serde(default)]
    pub health: bool,
    #[serde(default)]
    pub error: String,
}

/// Parse `etcdctl endpoint health -w json` (a JSON list; etcdctl exits 1 but still prints it
/// when an endpoint is unhealthy).
pub fn parse_endpoint_health(text: &str) -> Result<Vec<EndpointHealth>, String> {
    serde_json::from_str::<Vec<EndpointHealth>>(text.trim())
        .map_err(|e| format!("etcdctl's endpoint health is not the JSON it prints: {e}"))
}

/// A read of etcd on the control-plane peers: its members and their endpoints' health;
/// `None` when there was no peer to ask; `Err` when peers were asked and none told, with why.
pub type EtcdRead = Result<Option<(Vec<Member>, Vec<EndpointHealth>)>, String>;

/// What a read of etcd says about taking `machine` down (its member by name, else by its
/// address): `None` when there was no one to ask (the Nodes then stand for the members).
pub fn etcd_view(
    read: &EtcdRead,
    machine: Option<&crate::config::Machine>,
    name: &str,
    node: Option<&crate::k8s::NodeInfo>,
) -> Option<crate::remedy::guard::EtcdView> {
    use crate::remedy::guard::EtcdView;
    match read {
        Ok(None) => None,
        Err(e) => Some(EtcdView::Unreadable(e.clone())),
        Ok(Some((members, health))) => {
            let address = machine
                .and_then(|m| crate::gather::host_address(m, node))
                .map(|a| a.to_string());
            Some(EtcdView::Read(quorum_of(
                members,
                health,
                name,
                address.as_deref(),
            )))
        }
    }
}

/// etcd's voting members (learners do not vote), those whose client endpoint answered
/// healthy, and whether `node`'s own member is among them. Its member is the one named after
/// it (kubeadm's way), else the one at `address`; one that cannot be found counts as healthy
/// (the careful side: its absence could leave the quorum short).
pub fn quorum_of(
    members: &[Member],
    health: &[EndpointHealth],
    node: &str,
    address: Option<&str>,
) -> crate::remedy::guard::EtcdQuorum {
    let up = |m: &Member| {
        m.client_urls
            .iter()
            .any(|u| health.iter().any(|h| h.health && h.endpoint == *u))
    };
    let at = |m: &Member, a: &str| {
        m.client_urls.iter().chain(&m.peer_urls).any(|u| {
            url::Url::parse(u)
                .is_ok_and(|u| u.host_str().map(|h| h.trim_matches(['[', ']'])) == Some(a))
        })
    };
    let voting: Vec<&Member> = members.iter().filter(|m| !m.learner).collect();
    let this = voting
        .iter()
        .find(|m| m.name == node)
        .or_else(|| address.and_then(|a| voting.iter().find(|m| at(m, a))));
    let down: Vec<String> = health
        .iter()
        .filter(|h| !h.health)
        .map(|h| match h.error.as_str() {
            "" => h.endpoint.clone(),
            e => format!("{} ({e})", h.endpoint),
        })
        .collect();
    crate::remedy::guard::EtcdQuorum {
        voting: voting.len(),
        healthy: voting.iter().filter(|m| up(m)).count(),
        this_healthy: this.is_none_or(|m| up(m)),
        down: if down.is_empty() {
            "none answered unhealthy; members without an answer count as down".into()
        } else {
            down.join(", ")
        },
    }
}

/// Whether removing `gone` leaves etcd with quorum: the voting members left, of which those
/// `healthy` says are up (kubeadm names members after their nodes), must be a majority of
/// the members left. `Err` says why not.
pub fn removal_keeps_quorum(
    members: &[Member],
    gone: &Member,
    healthy: impl Fn(&str) -> bool,
) -> Result<(), String> {
    let left: Vec<&Member> = members
        .iter()
        .filter(|m| !m.learner && m.id != gone.id)
        .collect();
    if left.is_empty() {
        return Err(format!(
            "{} is etcd's last voting member; removing it would destroy the cluster's data store",
            gone.name
        ));
    }
    let quorum = left.len() / 2 + 1;
    let up: Vec<&str> = left
        .iter()
        .filter(|m| healthy(&m.name))
        .map(|m| m.name.as_str())
        .collect();
    if up.len() < quorum {
        return Err(format!(
            "after removing {} etcd would have {} members of which {} are healthy ({}); quorum needs {quorum}",
            gone.name,
            left.len(),
            up.len(),
            up.join(", ")
        ));
    }
    Ok(())
}

/// The certificate key `kubeadm init phase upload-certs --upload-certs` prints on its last
/// line (64 hexadecimal characters).
pub fn certificate_key(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
}

/// What a join needs: the API endpoint, the CA hashes, the token and, for a control-plane
/// node, the certificate key.
pub struct Join<'a> {
    pub endpoint: &'a str,
    pub hashes: &'a [String],
    pub node: &'a str,
    pub token: &'a str,
    pub certificate_key: Option<&'a str>,
}

impl Join<'_> {
    /// `kubeadm join …`; with `redact` the token and the certificate key are `<redacted>`
    /// (timelines, dry runs, errors).
    pub fn command(&self, redact: bool) -> String {
        let hide = |s: &str| {
            if redact {
                "<redacted>".to_owned()
            } else {
                s.to_owned()
            }
        };
        let mut c = format!(
            "kubeadm join {} --token {}",
            crate::health::host::q(self.endpoint),
            hide(self.token)
        );
        for h in self.hashes {
            c += &format!(
                " --discovery-token-ca-cert-hash {}",
                crate::health::host::q(h)
            );
        }
        c += &format!(" --node-name {}", crate::health::host::q(self.node));
        if let Some(k) = self.certificate_key {
            c += &format!(" --control-plane --certificate-key {}", hide(k));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::Taint;

    fn node() -> NodeInfo {
        let mut n = crate::testing::node("node-1");
        for (k, v) in [
            ("kubernetes.io/hostname", "node-1"),
            ("kubernetes.io/arch", "amd64"),
            ("node-role.kubernetes.io/worker", ""),
            ("topology.kubernetes.io/zone", "b"),
            ("example.com/rack", "r12"),
            ("feature.node.kubernetes.io/cpu-cpuid.AVX", "true"),
        ] {
            n.labels.insert(k, v.into());
        }
        for (k, v) in [
            (
                "kubeadm.alpha.kubernetes.io/cri-socket",
                "unix:///run/containerd.sock",
            ),
            ("node.alpha.kubernetes.io/ttl", "0"),
            ("oob.dev/cordoned", "true"),
            ("example.com/owner", "team-a"),
        ] {
            n.annotations.insert(k, v.into());
        }
        n.taints = vec![
            Taint {
                key: "dedicated".into(),
                value: Some("gpu".into()),
                effect: "NoSchedule".into(),
            },
            Taint {
                key: "node.kubernetes.io/unreachable".into(),
                value: None,
                effect: "NoExecute".into(),
            },
            Taint {
                key: "node.kubernetes.io/out-of-service".into(),
                value: Some("nodeshutdown".into()),
                effect: "NoExecute".into(),
            },
        ];
        n
    }

    #[test]
    fn the_record_keeps_what_people_set_and_leaves_what_the_kubelet_and_controllers_own() {
        let k = Kept::of(&node());
        assert!(k.existed && !k.control_plane);
        assert_eq!(
            k.labels.keys().collect::<Vec<_>>(),
            ["example.com/rack", "node-role.kubernetes.io/worker"]
        );
        assert_eq!(
            k.annotations.keys().collect::<Vec<_>>(),
            ["example.com/owner"]
        );
        assert_eq!(k.taints.len(), 1);
        assert_eq!(k.taints[0].key, "dedicated");
        assert_eq!(k.taints[0].value.as_deref(), Some("gpu"));
        let mut cp = node();
        cp.labels
            .insert(crate::remedy::guard::CONTROL_PLANE_LABEL, String::new());
        assert!(Kept::of(&cp).control_plane);
        // Journaled as JSON and read back the same.
        let text = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<Kept>(&text).unwrap(), k);
    }

    const MEMBERS: &str = r#"{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"raft_term":3},
      "members":[{"ID":10276657743932975437,"name":"cp-1","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]},
                 {"ID":9372538179322589801,"name":"cp-2","peerURLs":["https://10.0.0.2:2380"],"clientURLs":["https://10.0.0.2:2379"]},
                 {"ID":12195829383621617193,"name":"cp-3","peerURLs":["https://10.0.0.3:2380"],"clientURLs":["https://10.0.0.3:2379"]}]}"#;

    #[test]
    fn member_ids_are_read_as_64_bit_and_removed_by_their_hex_form() {
        let m = parse_members(MEMBERS).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "cp-1");
        assert_eq!(m[0].hex_id(), "8e9e05c52164694d");
        assert!(parse_members("Error: context deadline exceeded").is_err());
        assert!(parse_members(r#"{"members":[{"ID":"x"}]}"#).is_err());
        assert_eq!(parse_members(r#"{"header":{}}"#).unwrap(), vec![]);
    }

    /// `endpoint health --cluster -w json` as etcdctl prints it with one member down (it
    /// exits 1 then, and still prints the list).
    #[test]
    fn the_quorum_counts_healthy_voting_members_by_endpoint() {
        let m = parse_members(MEMBERS).unwrap();
        let health = parse_endpoint_health(
            r#"[{"endpoint":"https://10.0.0.1:2379","health":true,"took":"2.1ms"},
                {"endpoint":"https://10.0.0.2:2379","health":false,"took":"5.0s","error":"context deadline exceeded"},
                {"endpoint":"https://10.0.0.3:2379","health":true,"took":"1.8ms"}]"#,
        )
        .unwrap();
        let q = quorum_of(&m, &health, "cp-1", None);
        assert_eq!((q.voting, q.healthy, q.this_healthy), (3, 2, true));
        assert!(
            q.down.contains("10.0.0.2:2379 (context deadline exceeded)"),
            "{}",
            q.down
        );
        // cp-2 itself is the one down.
        assert!(!quorum_of(&m, &health, "cp-2", None).this_healthy);
        // Named otherwise (an FQDN): found by its address.
        assert!(!quorum_of(&m, &health, "cp-2.example.net", Some("10.0.0.2")).this_healthy);
        // Not found at all: counted as healthy (the careful side).
        assert!(quorum_of(&m, &health, "cp-9", Some("10.0.0.9")).this_healthy);
        // An endpoint missing from the answer counts as down.
        assert_eq!(quorum_of(&m, &health[..1], "cp-3", None).healthy, 1);
        assert!(parse_endpoint_health("Error: context deadline exceeded").is_err());
    }

    #[test]
    fn a_dead_member_is_removed_only_while_the_others_keep_quorum() {
        let m = parse_members(MEMBERS).unwrap();
        // cp-1 dead, cp-2 and cp-3 up: two of two left.
        assert!(removal_keeps_quorum(&m, &m[0], |n| n != "cp-1").is_ok());
        // cp-1 dead and cp-2 down too: one healthy of two left, no quorum.
        let why = removal_keeps_quorum(&m, &m[0], |n| n == "cp-3").unwrap_err();
        assert!(why.contains("quorum needs 2"), "{why}");
        // The last member is never removed.
        let one = &m[..1];
        assert!(removal_keeps_quorum(one, &one[0], |_| true)
            .unwrap_err()
            .contains("last voting member"));
        // A learner does not vote: it does not count toward quorum.
        let mut learners = m.clone();
        learners[2].learner = true;
        assert!(removal_keeps_quorum(&learners, &learners[0], |_| true).is_ok());
        assert!(removal_keeps_quorum(&learners, &learners[0], |n| n == "cp-3").is_err());
    }

    #[test]
    fn the_certificate_key_is_the_last_hex_line_and_the_join_line_hides_secrets() {
        let out = "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n[upload-certs] Using certificate key:\n4b9e4f1c1c0a3e6f2b6d8a1e3f5c7d9b0a2c4e6f8a1b3c5d7e9f0a2b4c6d8e0f\n";
        let key = certificate_key(out).unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(certificate_key("[upload-certs] nothing\n"), None);
        let hashes = vec!["sha256:abc".to_owned()];
        let j = Join {
            endpoint: "10.0.0.10:6443",
            hashes: &hashes,
            node: "cp-1",
            token: "abcdef.0123456789abcdef",
            certificate_key: Some(&key),
        };
        let real = j.command(false);
        assert!(real.starts_with("kubeadm join '10.0.0.10:6443' --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash 'sha256:abc' --node-name 'cp-1' --control-plane --certificate-key "), "{real}");
        let shown = j.command(true);
        assert!(
            !shown.contains("0123456789abcdef") && !shown.contains(&key),
            "{shown}"
        );
    }
}
