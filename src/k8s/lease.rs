//! coordination.k8s.io/v1 Leases: leader election for `oob serve` replicas, and a per-node
//! lock so that the CLI and the service never act on the same node at once. A lease is held
//! while renewed within its duration; an expired lease may be taken over. Every write carries
//! the resourceVersion it read, so two contenders cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use sha2::{Digest, Sha256};
use tracing::{debug, info};

use super::NodeOpsError;

/// One named lease, seen from one contender.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
}

/// Object names are DNS subdomains: at most 253 bytes.
const MAX_NAME_BYTES: usize = 253;

/// The per-node lock's lease name: `oob-node-{node}`. A node name longer than 244 bytes would
/// make it too long for the API server, so then the name is cut and ends in a hash of the
/// whole node name instead (still one lease per node).
pub fn node_lock_name(node: &str) -> String {
    let name = format!("oob-node-{node}");
    if name.len() <= MAX_NAME_BYTES {
        return name;
    }
    let hash: String = Sha256::digest(node.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let room = MAX_NAME_BYTES - hash.len() - 1;
    let head = super::kube_ops::truncate_bytes(&name, room).trim_end_matches(['.', '-']);
    format!("{head}-{hash}")
}

/// The node whose per-node lock `name` is (`None` for other leases, and for the hashed
/// names of overlong node names).
pub fn node_of_lock(name: &str) -> Option<&str> {
    name.strip_prefix("oob-node-")
        .filter(|node| node_lock_name(node) == name)
}

impl LeaseLock {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        holder: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            holder: holder.to_owned(),
            duration,
        }
    }

    fn spec(&self, now: Timestamp, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Acquire, renew, or take over an expired lease. `Ok(true)` when we hold it afterwards.
    pub async fn try_acquire(&self) -> Result<bool, NodeOpsError> {
        let err = |e| NodeOpsError::from_kube(&self.name, "update lease", e);
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(err)? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, 0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    info!(lease = %self.name, holder = %self.holder, "lease acquired");
                    Ok(true)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.holder.as_str());
        let duration =
            SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
        let expired = spec
            .renew_time
            .as_ref()
            .and_then(|t| t.0.checked_add(duration).ok())
            .is_none_or(|deadline| deadline < now);
        if !ours && !expired {
            debug!(lease = %self.name, holder = ?spec.holder_identity, "lease held by another");
            return Ok(false);
        }
        let transitions = spec
            .lease_transitions
            .unwrap_or(0)
            .saturating_add(i32::from(!ours));
        lease.spec = Some(self.spec(
            now,
            transitions,
            if ours { spec.acquire_time } else { None },
        ));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                if !ours {
                    info!(lease = %self.name, holder = %self.holder, previous = ?spec.holder_identity, "expired lease taken over");
                }
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    /// Give the lease up if we hold it (renew time cleared, so another may take it at once).
    pub async fn release(&self) -> Result<(), NodeOpsError> {
        let err = |e| NodeOpsError::from_kube(&self.name, "release lease", e);
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(err)? else {
            return Ok(());
        };
        let Some(spec) = lease
            .spec
            .as_mut()
            .filter(|s| s.holder_identity.as_deref() == Some(self.holder.as_str()))
        else {
            return Ok(());
        };
        spec.holder_identity = None;
        spec.renew_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }
}

/// Where the medik8s operators (Node Healthcheck, Self Node Remediation, Node Maintenance…)
/// look for who works on a node: the Lease `node-<name>` in this namespace.
pub const MEDIK8S_NAMESPACE: &str = "medik8s-leases";
/// oob's holder identity in the medik8s lease: one name for every oob instance (which of them
/// acts is arbitrated by oob's own per-node lease).
pub const MEDIK8S_HOLDER: &str = "oob";

/// The medik8s lease name of `node`.
pub fn medik8s_lease_name(node: &str) -> String {
    format!("node-{node}")
}

/// Whether a medik8s lease is still held at `now`: renewed within its duration. A renew
/// time in the future (the holder's clock ahead of ours) counts as held: oob never takes a
/// lease over on a clock difference.
fn medik8s_valid(spec: &LeaseSpec, now: Timestamp) -> bool {
    let (Some(renew), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return false;
    };
    let due = renew
        .0
        .checked_add(SignedDuration::from_secs(i64::from(seconds)))
        .ok();
    due.is_some_and(|d| d >= now)
}

/// Take (create, renew, or take over when expired) `node`'s medik8s lease for oob, owned by
/// the Node (`uid`; `node_gone`: there is no Node, so no owner) as the operators make it.
/// `Err(Held)` while another holder's lease is valid; `Ok(())` also when the namespace does
/// not exist (no medik8s operator runs: there is no one to share the node with).
pub async fn medik8s_acquire(
    client: &kube::Client,
    node: &str,
    uid: Option<&str>,
    node_gone: bool,
    ttl: Duration,
    nhc_asked: bool,
) -> Result<(), NodeOpsError> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    let api: Api<Lease> = Api::namespaced(client.clone(), MEDIK8S_NAMESPACE);
    let name = medik8s_lease_name(node);
    let err = |e| NodeOpsError::from_kube(&name, "take the medik8s lease", e);
    let now = Timestamp::now();
    let owner = uid.map(|uid| {
        vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.to_owned(),
            uid: uid.to_owned(),
            ..OwnerReference::default()
        }]
    });
    let seconds = i32::try_from(ttl.as_secs().max(1)).unwrap_or(i32::MAX);
    // Twice at most: the lease is owned by the Node, so the garbage collector deletes it when
    // the Node goes (a replacement deletes it) — between our read and our write too (404).
    for _ in 0..2 {
        let found = match api.get_opt(&name).await {
            Ok(found) => found,
            // Without the optional RBAC (deploy/optional/medik8s) oob cannot see the medik8s
            // leases: said, and oob's own lock still holds among oob's actors.
            Err(kube::Error::Api(s)) if s.code == 403 => {
                tracing::warn!(
                    node,
                    "not allowed to read medik8s leases (deploy/optional/medik8s); acting without them"
                );
                return Ok(());
            }
            Err(e) => return Err(err(e)),
        };
        let Some(mut lease) = found else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    owner_references: owner.clone(),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(MEDIK8S_HOLDER.into()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(()),
                // The namespace does not exist: no medik8s operator here.
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    debug!(node, "no medik8s-leases namespace; no medik8s lease taken");
                    Ok(())
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Err(NodeOpsError::Held {
                    lease: format!("{MEDIK8S_NAMESPACE}/{name}"),
                    holder: "another actor (created at the same moment)".into(),
                }),
                Err(e) => Err(err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(MEDIK8S_HOLDER);
        // Node Healthcheck takes the node's lease when it creates a remediation; when that
        // remediation is oob's (an OobRemediation it made), it holds the node for oob.
        let nhc = spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| h.starts_with("NodeHealthCheck") || h == "NHC");
        if nhc && nhc_asked && medik8s_valid(&spec, now) {
            debug!(node, holder = ?spec.holder_identity, "the medik8s lease is Node Healthcheck's, held for oob");
            return Ok(());
        }
        if !ours && medik8s_valid(&spec, now) {
            return Err(NodeOpsError::Held {
                lease: format!("{MEDIK8S_NAMESPACE}/{name}"),
                holder: spec.holder_identity.unwrap_or_default(),
            });
        }
        let transitions = spec
            .lease_transitions
            .unwrap_or(0)
            .saturating_add(i32::from(!ours));
        // The Node as it is now: none while a replacement has deleted it (a stale owner would
        // let the garbage collector delete the lease under us), the new uid after it rejoined;
        // unchanged when the Node could not be read.
        if owner.is_some() || node_gone {
            lease.metadata.owner_references = owner.clone();
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(MEDIK8S_HOLDER.into()),
            lease_duration_seconds: Some(seconds),
            acquire_time: if ours {
                spec.acquire_time.or(Some(MicroTime(now)))
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        });
        return match api.replace(&name, &PostParams::default(), &lease).await {
            Ok(_) => {
                if !ours {
                    info!(node, previous = ?spec.holder_identity, "expired medik8s lease taken over");
                }
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                debug!(
                    node,
                    "the medik8s lease went between read and write; taking it again"
                );
                continue;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(NodeOpsError::Held {
                lease: format!("{MEDIK8S_NAMESPACE}/{name}"),
                holder: "another actor (changed at the same moment)".into(),
            }),
            Err(e) => Err(err(e)),
        };
    }
    Err(NodeOpsError::Held {
        lease: format!("{MEDIK8S_NAMESPACE}/{name}"),
        holder: "nobody: it was deleted twice while being taken".into(),
    })
}

/// Give `node`'s medik8s lease up (deleted, as the operators invalidate theirs) when oob
/// holds it; someone else's is left alone.
pub async fn medik8s_release(client: &kube::Client, node: &str) -> Result<(), NodeOpsError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), MEDIK8S_NAMESPACE);
    let name = medik8s_lease_name(node);
    let err = |e| NodeOpsError::from_kube(&name, "release the medik8s lease", e);
    let found = match api.get_opt(&name).await {
        Ok(found) => found,
        Err(kube::Error::Api(s)) if s.code == 403 => return Ok(()),
        Err(e) => return Err(err(e)),
    };
    let Some(lease) = found else {
        return Ok(());
    };
    let holder = lease.spec.and_then(|s| s.holder_identity);
    if holder.as_deref() != Some(MEDIK8S_HOLDER) {
        return Ok(());
    }
    match api.delete(&name, &kube::api::DeleteParams::default()).await {
        Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_stay_valid_object_names_for_the_longest_node_names() {
        assert_eq!(node_lock_name("node-1"), "oob-node-node-1");
        let at_limit = "a".repeat(244);
        assert_eq!(node_lock_name(&at_limit), format!("oob-node-{at_limit}"));
        let long = format!("{}.{}", "a".repeat(230), "b".repeat(22));
        let name = node_lock_name(&long);
        assert_eq!(name.len(), MAX_NAME_BYTES);
        assert!(name.starts_with("oob-node-aaa"));
        assert_ne!(
            name,
            node_lock_name(&format!("{}.{}", "a".repeat(230), "c".repeat(22)))
        );
    }
}
