//! The last rung: replace a machine that came back from the technicians (repaired, new
//! board, reinstalled) and rejoin it with kubeadm. Every step is journaled under
//! `NODE/rID/replace-STEP` (ID: when the replacement started; a replacement stays open until
//! its `close` step is done, and a run picks the open one up) with its intent before and its
//! outcome after, so that a run
//! killed at any point and started again does each step once: a step with an outcome is
//! not done again (its result is read back from the journal), a step whose intent has no
//! outcome (killed while it was being sent) is not sent again either, the state it left is
//! read instead (the Node registered, the member gone).
//!
//! Steps (see [`crate::remedy::replace::STEPS`]): record what is restored afterwards; the
//! identity (the BMC's UUID and serial against the record; a new board only when a person
//! said so); for a control-plane node the etcd member removed, over SSH with `etcdctl` on a
//! healthy control-plane node, only while the others keep quorum; the Node deleted; a
//! bootstrap token; `kubeadm reset -f` and `kubeadm join` over SSH (or the provisioning
//! hook); the Node registered (cordoned at first sight) and Ready on the expected board; the
//! labels, annotations and taints restored; the health check; uncordon; close.

use std::time::Duration;

use serde::Serialize;

use super::{Executor, Subject, CORDONED_ANNOTATION};
use crate::config::{Machine, ReplacementSettings};
use crate::k8s::join::Rejoin;
use crate::k8s::lease::node_lock_name;
use crate::k8s::{NodeInfo, NodeOpsError, Taint};
use crate::remedy::guard::{same_machine, Expected};
use crate::remedy::journal::{Before, Intent};
use crate::remedy::replace::{self, Join, Kept};

/// How often the Node is read while waiting for it to register and be Ready.
const REGISTER_POLL: Duration = Duration::from_secs(2);
/// `kubeadm reset -f` and `kubeadm init phase upload-certs` on the host.
const KUBEADM_LIMIT: Duration = Duration::from_secs(300);
/// One `etcdctl` call.
const ETCDCTL_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error("{detail}")]
    Cluster { detail: String },
    #[error("node {node} is Ready: a kubelet is running under that name; kubeadm refuses to join a second Ready node named {node}, and oob does not delete a working node. Stop that kubelet (or drain and delete the Node yourself) and run the replacement again")]
    ReadyNodeExists { node: String },
    #[error("identity check failed for {node}: {why}. If the board was replaced, say so: `oob node replace {node} --new-board`")]
    Identity { node: String, why: String },
    #[error("the BMC of {node} cannot be read: {detail}")]
    Bmc { node: String, detail: String },
    #[error("refusing to remove {node}'s etcd member: {why}")]
    Quorum { node: String, why: String },
    #[error("{node} is a control-plane node and no other control-plane machine of the inventory is Ready with SSH settings to run etcdctl and kubeadm on")]
    NoControlPlanePeer { node: String },
    #[error("{node} has no SSH settings or address: the join cannot be run on it (configure `ssh`, or a provisioning `hook`)")]
    NoSsh { node: String },
    #[error("replace {node}, step {step}: {detail}")]
    Step {
        node: String,
        step: &'static str,
        detail: String,
    },
    #[error(
        "{node} did not register and become Ready{board} within {after_s} s after the join{sent}"
    )]
    NotRegistered {
        node: String,
        board: String,
        after_s: u64,
        sent: String,
    },
    #[error("{node} registered with systemUUID {found}, not the board the BMC reports ({expected}): another machine joined under this name")]
    WrongBoard {
        node: String,
        found: String,
        expected: String,
    },
    #[error("{node} rejoined but its health check failed: {detail}; it stays cordoned, run the replacement again once fixed")]
    Unhealthy { node: String, detail: String },
    #[error("{node} is locked by {by}; try again later")]
    Busy { node: String, by: String },
    /// The command never reached the host (a host key or our key refused): a later run
    /// may send it.
    #[error("replace {node}, step {step}: not sent: {detail}")]
    NotSent {
        node: String,
        step: &'static str,
        detail: String,
    },
    #[error("journal: {0}")]
    Journal(#[from] crate::remedy::journal::JournalError),
}

/// What a replacement is asked to do.
pub struct ReplaceRequest<'a> {
    pub machine: &'a Machine,
    /// The inventory's other machines with their Nodes: a control-plane node's etcd member
    /// is removed, and its certificate key made, on one of them that is Ready.
    pub peers: &'a [(Machine, NodeInfo)],
    /// A person said the board was replaced: a new system UUID is accepted (and reported).
    pub new_board: bool,
    /// A person abandons the open replacement (it stopped and the machine was redone by
    /// hand): a new one starts from the first step.
    pub fresh: bool,
    pub settings: &'a ReplacementSettings,
}

/// One step as it went.
#[derive(Debug, Clone, Serialize)]
pub struct StepDone {
    pub step: &'static str,
    /// `done`, `journaled` (done before, not again), `skipped`, `dry-run`.
    pub how: &'static str,
    pub detail: String,
}

/// The workflow's result.
#[derive(Debug, Clone, Serialize)]
pub struct Replaced {
    pub node: String,
    pub control_plane: bool,
    pub board_changed: bool,
    pub steps: Vec<StepDone>,
}

/// The identity step's journaled result.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
struct Board {
    uuid: Option<String>,
    changed: bool,
}

struct Run<'a> {
    r: &'a ReplaceRequest<'a>,
    node: &'a str,
    /// `NODE/rID`: the replacement's journal keys start with it.
    prefix: String,
    out: Replaced,
}

impl Run<'_> {
    fn key(&self, step: &str) -> String {
        format!("{}/replace-{step}", self.prefix)
    }

    fn push(&mut self, step: &'static str, how: &'static str, detail: impl Into<String>) {
        self.out.steps.push(StepDone {
            step,
            how,
            detail: detail.into(),
        });
    }

    fn fail(&self, step: &'static str, detail: impl Into<String>) -> ReplaceError {
        ReplaceError::Step {
            node: self.node.to_owned(),
            step,
            detail: detail.into(),
        }
    }
}

/// How long the per-node lock of a replacement lives without renewal: the join alone may
/// take `join_timeout_s`.
fn lock_ttl(s: &ReplacementSettings) -> Duration {
    // Renewed before every step; the longest stretch without a renewal is the
    // certificate-key upload and the join.
    crate::timeouts::NODE_LOCK
        .max(Duration::from_secs(s.join_timeout_s) + KUBEADM_LIMIT + KUBEADM_LIMIT)
}

/// A test hook: a debug build asked to (`OOB_CRASH_AFTER=STEP`) dies like a SIGKILL right
/// after the step's outcome is journaled, or after its intent (`OOB_CRASH_AFTER=STEP-sent`).
fn crash_point(at: &str) {
    if cfg!(debug_assertions) && std::env::var("OOB_CRASH_AFTER").is_ok_and(|v| v == at) {
        std::process::abort();
    }
}

/// The Ready control-plane machines among `peers` other than `node`, with SSH, and their
/// addresses.
fn ready_peers<'p>(
    node: &'p str,
    peers: &'p [(Machine, NodeInfo)],
) -> impl Iterator<Item = (&'p Machine, String)> + 'p {
    peers.iter().filter_map(move |(m, n)| {
        let fit = m.name != node
            && m.ssh.is_some()
            && n.ready.as_deref() == Some("True")
            && n.labels
                .contains_key(crate::remedy::guard::CONTROL_PLANE_LABEL);
        fit.then(|| host_of(m, Some(n)).map(|h| (m, h)))?
    })
}

/// Where the host is reached over SSH (`host` in the config, else the Node's address as
/// recorded).
fn host_of(m: &Machine, node: Option<&NodeInfo>) -> Option<String> {
    crate::gather::host_address(m, node).map(|ip| ip.to_string())
}

impl Executor {
    /// Replace `r.machine`'s node; see the module documentation. With dry run, every step
    /// says what it would do (the commands with secrets redacted, the objects it would
    /// touch) and nothing is changed.
    pub async fn replace(
        &self,
        r: &ReplaceRequest<'_>,
        rejoin: &dyn Rejoin,
    ) -> Result<Replaced, ReplaceError> {
        let node = r.machine.name.as_str();
        if r.fresh && !self.dry_run {
            self.abandon_replacement(node)?;
        }
        let mut run = Run {
            r,
            node,
            prefix: self.open_replacement(node)?,
            out: Replaced {
                node: node.to_owned(),
                control_plane: false,
                board_changed: false,
                steps: Vec::new(),
            },
        };
        // The per-node lock (shared with the service and every CLI) for the whole
        // replacement, renewed while the Node is awaited: no two replacements of one node,
        // no power action in the middle of one.
        let lease = node_lock_name(node);
        let ttl = lock_ttl(r.settings);
        if !self.dry_run {
            match self.nodes.try_lock(&lease, &self.holder, ttl).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(ReplaceError::Busy {
                        node: node.to_owned(),
                        by: "another oob actor".into(),
                    })
                }
                Err(NodeOpsError::Held { lease, holder }) => {
                    return Err(ReplaceError::Busy {
                        node: node.to_owned(),
                        by: format!("{holder} (Lease {lease})"),
                    })
                }
                Err(e) => return Err(run.fail("record", format!("per-node lock: {e}"))),
            }
        }
        let result = self.replace_steps(&mut run, rejoin).await;
        if !self.dry_run {
            if let Err(e) = self.nodes.unlock(&lease, &self.holder).await {
                tracing::warn!(node, error = %e, "releasing the per-node lock failed; it expires on its own");
            }
        }
        if let Err(e) = &result {
            self.note(node, format!("replacement stopped: {e}"));
        }
        result.map(|()| run.out)
    }

    /// Close `node`'s open replacement as abandoned (said in the timeline).
    fn abandon_replacement(&self, node: &str) -> Result<(), ReplaceError> {
        let prefix = self.open_replacement(node)?;
        if self
            .journal
            .entry(&format!("{prefix}/replace-record"))?
            .is_none()
        {
            return Ok(());
        }
        let key = format!("{prefix}/replace-close");
        self.journal
            .intent(&key, node, "close", &Before::default(), self.now_ms())?;
        self.journal
            .outcome(&key, "done", "abandoned by a person", self.now_ms())?;
        self.note(
            node,
            "replace: the open replacement abandoned by a person; a new one starts",
        );
        Ok(())
    }

    /// The journal prefix of `node`'s open replacement (its `record` step journaled, its
    /// `close` not done), else of a new one starting now.
    fn open_replacement(&self, node: &str) -> Result<String, ReplaceError> {
        let latest = self
            .journal
            .entries(Some(node))?
            .into_iter()
            .filter(|e| e.key.ends_with("/replace-record"))
            .max_by_key(|e| e.intent_ms)
            .map(|e| e.key.trim_end_matches("/replace-record").to_owned());
        if let Some(prefix) = latest {
            let closed = self
                .journal
                .entry(&format!("{prefix}/replace-close"))?
                .is_some_and(|e| e.outcome.as_deref() == Some("done"));
            if !closed {
                return Ok(prefix);
            }
        }
        Ok(format!("{node}/r{}", self.now_ms()))
    }

    async fn replace_steps(
        &self,
        run: &mut Run<'_>,
        rejoin: &dyn Rejoin,
    ) -> Result<(), ReplaceError> {
        let node = run.node;
        let current = match self.nodes.get(node).await {
            Ok(n) => Some(n),
            Err(NodeOpsError::NotFound { .. }) => None,
            Err(e) => return Err(run.fail("record", e.to_string())),
        };
        let joined = self.journal.entry(&run.key("join"))?.is_some();
        // A Ready Node of this name before the join: a machine is running as this node.
        if !joined && current.as_ref().and_then(|n| n.ready.as_deref()) == Some("True") {
            return Err(ReplaceError::ReadyNodeExists {
                node: node.to_owned(),
            });
        }
        let kept = self.replace_record(run, current.as_ref()).await?;
        run.out.control_plane = kept.control_plane;
        let host = host_of(run.r.machine, current.as_ref()).or_else(|| kept.host.clone());
        let board = self.replace_identity(run, &kept).await?;
        run.out.board_changed = board.changed;
        self.renew_lock(run).await?;
        if kept.control_plane {
            self.replace_etcd_member(run).await?;
        } else {
            run.push("etcd-member", "skipped", "not a control-plane node");
        }
        self.renew_lock(run).await?;
        self.replace_delete(run).await?;
        self.renew_lock(run).await?;
        let token = self.replace_token(run, rejoin).await?;
        self.renew_lock(run).await?;
        self.replace_join(run, rejoin, host.as_deref(), token.as_ref(), &kept)
            .await?;
        self.renew_lock(run).await?;
        let registered = self.replace_registered(run, &board).await?;
        self.renew_lock(run).await?;
        self.replace_restore(run, rejoin, &kept).await?;
        self.replace_health(run, &registered, host.as_deref())
            .await?;
        self.renew_lock(run).await?;
        self.replace_uncordon(run, &kept).await?;
        self.replace_close(run, &board).await?;
        Ok(())
    }

    /// Renew the per-node lock (also re-taking the medik8s lease, which the Node's deletion
    /// garbage-collects): lost to another actor, the replacement stops.
    async fn renew_lock(&self, run: &Run<'_>) -> Result<(), ReplaceError> {
        if self.dry_run {
            return Ok(());
        }
        let node = run.node;
        let lease = node_lock_name(node);
        match self
            .nodes
            .try_lock(&lease, &self.holder, lock_ttl(run.r.settings))
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReplaceError::Busy {
                node: node.to_owned(),
                by: "another oob actor (the lock was lost)".into(),
            }),
            Err(NodeOpsError::Held { lease, holder }) => Err(ReplaceError::Busy {
                node: node.to_owned(),
                by: format!("{holder} (Lease {lease})"),
            }),
            Err(e) => Err(run.fail("lock", format!("renewing the per-node lock: {e}"))),
        }
    }

    /// Journal `step`'s intent; `Some(entry)` when it was started before.
    async fn replace_intent(
        &self,
        run: &Run<'_>,
        step: &str,
        action: &str,
    ) -> Result<Option<crate::remedy::journal::Entry>, ReplaceError> {
        let key = run.key(step);
        self.share_intent(&key, run.node, action, &Before::default())
            .await
            .map_err(|detail| ReplaceError::Cluster { detail })?;
        match self
            .journal
            .intent(&key, run.node, action, &Before::default(), self.now_ms())?
        {
            Intent::New => Ok(None),
            Intent::Seen(e) => Ok(Some(e)),
        }
    }

    async fn replace_outcome(
        &self,
        run: &Run<'_>,
        step: &str,
        detail: &str,
    ) -> Result<(), ReplaceError> {
        let key = run.key(step);
        self.journal.outcome(&key, "done", detail, self.now_ms())?;
        self.share_outcome(&key, "done", detail).await;
        crash_point(step);
        Ok(())
    }

    /// `step` done: the timeline line, the outcome journaled, the step's row.
    async fn replace_finish(
        &self,
        run: &mut Run<'_>,
        step: &'static str,
        what: String,
    ) -> Result<(), ReplaceError> {
        self.note(run.node, format!("replace: {what}"));
        self.replace_outcome(run, step, &what).await?;
        run.push(step, "done", what);
        Ok(())
    }

    /// Whether `step` may be sent now: journaled as new, or journaled before and known not
    /// to have reached the host (then reopened). `false`: it may have been sent.
    async fn may_send(
        &self,
        run: &Run<'_>,
        step: &str,
        action: &str,
    ) -> Result<bool, ReplaceError> {
        match self.replace_intent(run, step, action).await? {
            None => Ok(true),
            Some(e) if e.outcome.as_deref() == Some("not-sent") => {
                self.journal.reopen(&run.key(step))?;
                Ok(true)
            }
            Some(_) => Ok(false),
        }
    }

    /// A command that never reached the host is journaled so (a later run sends it).
    fn not_sent<T>(
        &self,
        run: &Run<'_>,
        step: &str,
        sent: &Result<T, ReplaceError>,
    ) -> Result<(), ReplaceError> {
        if let Err(ReplaceError::NotSent { detail, .. }) = sent {
            self.journal
                .outcome(&run.key(step), "not-sent", detail, self.now_ms())?;
        }
        Ok(())
    }

    /// The outcome journaled for `step` when it was done before.
    fn replace_done(&self, run: &Run<'_>, step: &str) -> Result<Option<String>, ReplaceError> {
        Ok(self
            .journal
            .entry(&run.key(step))?
            .filter(|e| e.outcome.as_deref() == Some("done"))
            .map(|e| e.detail.unwrap_or_default()))
    }

    /// Step 1: What is restored afterwards, recorded before anything changes.
    async fn replace_record(
        &self,
        run: &mut Run<'_>,
        current: Option<&NodeInfo>,
    ) -> Result<Kept, ReplaceError> {
        if let Some(detail) = self.replace_done(run, "record")? {
            let kept: Kept = serde_json::from_str(&detail)
                .map_err(|e| run.fail("record", format!("journaled record unreadable: {e}")))?;
            run.push("record", "journaled", "recorded before");
            return Ok(kept);
        }
        let mut kept = current.map(Kept::of).unwrap_or_default();
        kept.host = host_of(run.r.machine, current);
        let what = format!(
            "{} labels, {} annotations, {} taints to restore{}",
            kept.labels.len(),
            kept.annotations.len(),
            kept.taints.len(),
            if kept.existed {
                ""
            } else {
                " (no Node object: nothing recorded)"
            }
        );
        if self.dry_run {
            run.push("record", "dry-run", what);
            return Ok(kept);
        }
        let json = serde_json::to_string(&kept).map_err(|e| run.fail("record", e.to_string()))?;
        self.replace_intent(run, "record", "record").await?;
        self.note(run.node, format!("replace: recorded {what}"));
        self.replace_outcome(run, "record", &json).await?;
        run.push("record", "done", what);
        Ok(kept)
    }

    /// Step 2: The BMC's identity now against the record.
    async fn replace_identity(
        &self,
        run: &mut Run<'_>,
        kept: &Kept,
    ) -> Result<Board, ReplaceError> {
        if let Some(detail) = self.replace_done(run, "identity")? {
            run.push("identity", "journaled", detail.clone());
            return serde_json::from_str(&detail)
                .map_err(|e| run.fail("identity", format!("journaled identity unreadable: {e}")));
        }
        let node = run.node;
        let bmc_error = |detail: String| ReplaceError::Bmc {
            node: node.to_owned(),
            detail,
        };
        let c = self
            .connect(run.r.machine)
            .await
            .map_err(|e| bmc_error(e.to_string()))?;
        let id = c.bmc.identity().await;
        c.bmc.close().await;
        let id = id.map_err(|e| bmc_error(e.to_string()))?;
        let expected = Expected {
            system_uuid: kept.system_uuid.clone(),
            serial: run.r.machine.serial.clone(),
        };
        let (board, what) = match same_machine(&id, &expected) {
            Ok(matched) => (
                Board {
                    uuid: id.uuid.clone(),
                    changed: false,
                },
                format!("identity verified: {matched}"),
            ),
            Err(why) if run.r.new_board => (
                Board {
                    uuid: id.uuid.clone(),
                    changed: true,
                },
                format!("new board, as the person said: {why}"),
            ),
            Err(why) => {
                self.note(node, format!("replace: identity check FAILED: {why}"));
                return Err(ReplaceError::Identity {
                    node: node.to_owned(),
                    why,
                });
            }
        };
        if self.dry_run {
            run.push("identity", "dry-run", what);
            return Ok(board);
        }
        self.replace_intent(run, "identity", "identity").await?;
        self.note(node, format!("replace: {what}"));
        let json =
            serde_json::to_string(&board).map_err(|e| run.fail("identity", e.to_string()))?;
        self.replace_outcome(run, "identity", &json).await?;
        run.push("identity", "done", what);
        Ok(board)
    }

    /// A Ready control-plane machine of the inventory other than this one, with SSH.
    fn control_plane_peer<'p>(&self, run: &'p Run<'_>) -> Option<(&'p Machine, String)> {
        ready_peers(run.node, run.r.peers).next()
    }

    /// etcd's members and their health, read over SSH on the Ready control-plane peers of
    /// `node`, one after the other until one tells (a peer's own member may be the one down:
    /// its etcdctl then prints nothing): `member list` and `endpoint health --cluster` in
    /// one session (health exits 1 when a member is down and still prints the list).
    /// `Ok(None)`: no peer to ask; `Err`: peers were asked and none told, with why.
    pub async fn etcd_members(
        &self,
        node: &str,
        peers: &[(Machine, NodeInfo)],
        etcdctl: &str,
    ) -> replace::EtcdRead {
        const SPLIT: &str = "=== oob: endpoint health ===";
        let command = format!(
            "{etcdctl} member list -w json; echo '{SPLIT}'; {etcdctl} endpoint health --cluster -w json"
        );
        let mut failures = Vec::new();
        for (peer, host) in ready_peers(node, peers) {
            let read = async {
                let out = self
                    .hosts
                    .run(peer, &host, &command, ETCDCTL_LIMIT)
                    .await
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout);
                let said = || {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let err: String = err.trim().chars().take(200).collect();
                    format!("exit {:?}: {err}", out.exit_status)
                };
                let (members, health) = text.split_once(SPLIT).ok_or_else(said)?;
                let members =
                    replace::parse_members(members).map_err(|e| format!("{e}; {}", said()))?;
                let health = replace::parse_endpoint_health(health)
                    .map_err(|e| format!("{e}; {}", said()))?;
                if members.iter().all(|m| m.learner) {
                    return Err("no voting member listed".to_owned());
                }
                Ok((members, health))
            };
            match read.await {
                Ok(found) => return Ok(Some(found)),
                Err(e) => failures.push(format!("etcdctl on {}: {e}", peer.name)),
            }
        }
        if failures.is_empty() {
            return Ok(None);
        }
        Err(failures.join("; "))
    }

    /// Run `command` on `host` of `m`; stdout when it exits 0.
    async fn replace_ssh(
        &self,
        run: &Run<'_>,
        step: &'static str,
        (m, host): (&Machine, &str),
        command: &str,
        limit: Duration,
        shown: &str,
    ) -> Result<String, ReplaceError> {
        let out = self.hosts.run(m, host, command, limit).await.map_err(|e| {
            let detail = format!("`{shown}` on {}: {e}", m.name);
            if e.not_sent() {
                ReplaceError::NotSent {
                    node: run.node.to_owned(),
                    step,
                    detail,
                }
            } else {
                run.fail(step, detail)
            }
        })?;
        if out.exit_status != Some(0) {
            let err = String::from_utf8_lossy(&out.stderr);
            let tail: String = err
                .trim()
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(run.fail(
                step,
                format!(
                    "`{shown}` on {} exited with {:?}: {tail}",
                    m.name, out.exit_status
                ),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Step 3: A control-plane node's etcd member, removed before the join (a member left
    /// behind makes the rejoin fail), only while the other members keep quorum.
    async fn replace_etcd_member(&self, run: &mut Run<'_>) -> Result<(), ReplaceError> {
        if let Some(detail) = self.replace_done(run, "etcd-member")? {
            run.push("etcd-member", "journaled", detail);
            return Ok(());
        }
        let node = run.node;
        let (peer, peer_host) =
            self.control_plane_peer(run)
                .ok_or_else(|| ReplaceError::NoControlPlanePeer {
                    node: node.to_owned(),
                })?;
        let peer = peer.clone();
        let etcdctl = run.r.settings.etcdctl.clone();
        let list = format!("{etcdctl} member list -w json");
        let text = self
            .replace_ssh(
                run,
                "etcd-member",
                (&peer, &peer_host),
                &list,
                ETCDCTL_LIMIT,
                "etcdctl member list",
            )
            .await?;
        let members = replace::parse_members(&text).map_err(|e| run.fail("etcd-member", e))?;
        let seen = self.journal.entry(&run.key("etcd-member"))?;
        let Some(member) = members.iter().find(|m| m.name == node) else {
            let d = format!(
                "no etcd member named {node} (members: {})",
                members
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if !self.dry_run {
                if seen.is_none() {
                    self.replace_intent(run, "etcd-member", "etcd member remove")
                        .await?;
                }
                self.note(node, format!("replace: {d}"));
                self.replace_outcome(run, "etcd-member", &d).await?;
            }
            run.push(
                "etcd-member",
                if self.dry_run { "dry-run" } else { "done" },
                d,
            );
            return Ok(());
        };
        if seen.is_some() {
            // Sent before a crash and the member is still listed: the removal did not
            // happen. It is not sent blindly again: a person looks.
            return Err(run.fail(
                "etcd-member",
                format!(
                    "`etcdctl member remove {}` was journaled before and the member is still listed; check etcd (`etcdctl member list`) before running the replacement again",
                    member.hex_id()
                ),
            ));
        }
        let ready: std::collections::BTreeMap<&str, bool> = run
            .r
            .peers
            .iter()
            .map(|(m, n)| (m.name.as_str(), n.ready.as_deref() == Some("True")))
            .collect();
        replace::removal_keeps_quorum(&members, member, |name| {
            name != node && ready.get(name).copied().unwrap_or(false)
        })
        .map_err(|why| ReplaceError::Quorum {
            node: node.to_owned(),
            why,
        })?;
        let remove = format!("{etcdctl} member remove {}", member.hex_id());
        let what = format!(
            "etcd member {} ({}) removed with etcdctl on {}",
            member.hex_id(),
            node,
            peer.name
        );
        if self.dry_run {
            run.push(
                "etcd-member",
                "dry-run",
                format!("would run on {}: {remove}", peer.name),
            );
            return Ok(());
        }
        self.replace_intent(run, "etcd-member", "etcd member remove")
            .await?;
        crash_point("etcd-member-sent");
        self.note(
            node,
            format!(
                "replace: removing etcd member {} on {} (the others keep quorum)",
                member.hex_id(),
                peer.name
            ),
        );
        self.replace_ssh(
            run,
            "etcd-member",
            (&peer, &peer_host),
            &remove,
            ETCDCTL_LIMIT,
            "etcdctl member remove",
        )
        .await?;
        self.replace_outcome(run, "etcd-member", &what).await?;
        run.push("etcd-member", "done", what);
        Ok(())
    }

    /// Step 4: The Node object, deleted (gone already counts as done).
    async fn replace_delete(&self, run: &mut Run<'_>) -> Result<(), ReplaceError> {
        if let Some(detail) = self.replace_done(run, "delete-node")? {
            run.push("delete-node", "journaled", detail);
            return Ok(());
        }
        let node = run.node;
        if self.dry_run {
            run.push(
                "delete-node",
                "dry-run",
                format!("would delete Node {node}"),
            );
            return Ok(());
        }
        self.replace_intent(run, "delete-node", "delete node")
            .await?;
        // Node Healthcheck, when it asked for this node, learns that the Node goes away on
        // purpose (and waits for Succeeded before it cleans up).
        if let Some(shared) = &self.episodes {
            let now = crate::clock::rfc3339(self.now_ms());
            let said = shared
                .update(node, "", &|s| {
                    s.set_condition(
                        crate::k8s::remediation::PERMANENT_NODE_DELETION_EXPECTED,
                        "True",
                        "NodeReplaced",
                        "the machine is replaced: its Node is deleted and registers again after kubeadm join",
                        &now,
                    );
                })
                .await;
            match said {
                Ok(()) | Err(NodeOpsError::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(node, error = %e, "PermanentNodeDeletionExpected not written");
                }
            }
        }
        let what = match self.nodes.delete(node).await {
            Ok(()) => format!("Node {node} deleted"),
            Err(NodeOpsError::NotFound { .. }) => format!("Node {node} already gone"),
            Err(e) => return Err(run.fail("delete-node", e.to_string())),
        };
        self.replace_finish(run, "delete-node", what).await?;
        Ok(())
    }

    /// Step 5: A bootstrap token with a short life; its id is journaled, never its secret (a
    /// resumed run reads the secret back from its Secret, or mints a new one if it is gone).
    async fn replace_token(
        &self,
        run: &mut Run<'_>,
        rejoin: &dyn Rejoin,
    ) -> Result<Option<crate::k8s::join::BootstrapToken>, ReplaceError> {
        let ttl = Duration::from_secs(run.r.settings.token_ttl_s);
        if self.dry_run {
            run.push(
                "token",
                "dry-run",
                format!(
                    "would create a bootstrap token (Secret kube-system/bootstrap-token-<id>) valid for {} s",
                    ttl.as_secs()
                ),
            );
            return Ok(None);
        }
        if let Some(id) = self.replace_done(run, "token")? {
            match rejoin.token(&id).await {
                Ok(Some(t)) => {
                    run.push("token", "journaled", format!("bootstrap token {id}"));
                    return Ok(Some(t));
                }
                Ok(None) if self.journal.entry(&run.key("join"))?.is_some() => {
                    // The join was sent with it: nothing needs it any more.
                    run.push(
                        "token",
                        "journaled",
                        format!("bootstrap token {id} (expired)"),
                    );
                    return Ok(None);
                }
                Ok(None) => {
                    self.note(
                        run.node,
                        format!("replace: bootstrap token {id} is gone (expired?); a new one"),
                    );
                }
                Err(e) => return Err(run.fail("token", e.to_string())),
            }
        } else {
            self.replace_intent(run, "token", "bootstrap token").await?;
        }
        let token = rejoin
            .mint(ttl)
            .await
            .map_err(|e| run.fail("token", e.to_string()))?;
        let what = format!(
            "bootstrap token {} valid until {}",
            token.id, token.expiration
        );
        self.note(run.node, format!("replace: {what}"));
        // The id only: the outcome of a re-minted token replaces the first one's.
        self.journal.reopen(&run.key("token"))?;
        self.replace_outcome(run, "token", &token.id).await?;
        run.push("token", "done", what);
        Ok(Some(token))
    }

    /// Step 6: `kubeadm reset -f` and `kubeadm join` on the machine over SSH, or the join
    /// command handed to the provisioning hook. The join is sent at most once: killed after
    /// its intent, a resumed run does not send it again and waits for the Node.
    async fn replace_join(
        &self,
        run: &mut Run<'_>,
        rejoin: &dyn Rejoin,
        host: Option<&str>,
        token: Option<&crate::k8s::join::BootstrapToken>,
        kept: &Kept,
    ) -> Result<(), ReplaceError> {
        let node = run.node;
        let hook = !run.r.settings.hook.is_empty();
        let m = run.r.machine;
        let host = if hook {
            None
        } else {
            Some(
                host.filter(|_| m.ssh.is_some())
                    .ok_or_else(|| ReplaceError::NoSsh {
                        node: node.to_owned(),
                    })?
                    .to_owned(),
            )
        };
        // Reset: what the machine had of a cluster (a reinstalled one has nothing).
        if let Some(host) = &host {
            if let Some(detail) = self.replace_done(run, "reset")? {
                run.push("reset", "journaled", detail);
            } else if self.dry_run {
                run.push(
                    "reset",
                    "dry-run",
                    format!("would run on {node}: kubeadm reset -f"),
                );
            } else if !self.may_send(run, "reset", "kubeadm reset").await? {
                let d = "kubeadm reset -f journaled before; not run again";
                self.replace_outcome(run, "reset", d).await?;
                run.push("reset", "journaled", d);
            } else {
                crash_point("reset-sent");
                self.note(node, "replace: `kubeadm reset -f` over SSH");
                let sent = self
                    .replace_ssh(
                        run,
                        "reset",
                        (m, host),
                        "kubeadm reset -f",
                        KUBEADM_LIMIT,
                        "kubeadm reset -f",
                    )
                    .await;
                self.not_sent(run, "reset", &sent)?;
                sent?;
                self.replace_outcome(run, "reset", "kubeadm reset -f done")
                    .await?;
                run.push("reset", "done", "kubeadm reset -f");
            }
        } else {
            run.push(
                "reset",
                "skipped",
                "the provisioning hook installs the machine",
            );
        }
        if let Some(detail) = self.replace_done(run, "join")? {
            run.push("join", "journaled", detail);
            return Ok(());
        }
        if !self.dry_run {
            if let Some(e) = self
                .journal
                .entry(&run.key("join"))?
                .filter(|e| e.outcome.as_deref() != Some("not-sent"))
            {
                let d = format!(
                    "the join was sent at {} before oob stopped; not sent again, waiting for the Node",
                    crate::clock::rfc3339(e.intent_ms)
                );
                self.note(node, format!("replace: {d}"));
                run.push("join", "journaled", d);
                return Ok(());
            }
        }
        let (endpoint, hashes) = rejoin
            .discovery()
            .await
            .map_err(|e| run.fail("join", e.to_string()))?;
        // A control-plane join needs the certificates: a fresh key, uploaded on a peer.
        let certificate_key = if kept.control_plane && !self.dry_run {
            let (peer, peer_host) =
                self.control_plane_peer(run)
                    .ok_or_else(|| ReplaceError::NoControlPlanePeer {
                        node: node.to_owned(),
                    })?;
            let peer = peer.clone();
            let out = self
                .replace_ssh(
                    run,
                    "join",
                    (&peer, &peer_host),
                    "kubeadm init phase upload-certs --upload-certs",
                    KUBEADM_LIMIT,
                    "kubeadm init phase upload-certs --upload-certs",
                )
                .await?;
            Some(replace::certificate_key(&out).ok_or_else(|| {
                run.fail(
                    "join",
                    "`kubeadm init phase upload-certs` printed no certificate key",
                )
            })?)
        } else if kept.control_plane {
            Some("<certificate-key>".to_owned())
        } else {
            None
        };
        let secret = token.map(|t| t.token()).unwrap_or_else(|| "<token>".into());
        let join = Join {
            endpoint: &endpoint,
            hashes: &hashes,
            node,
            token: &secret,
            certificate_key: certificate_key.as_deref(),
        };
        let shown = join.command(true);
        if self.dry_run {
            let to = if hook {
                format!("would hand to the hook {:?}", run.r.settings.hook)
            } else {
                format!("would run on {node}")
            };
            run.push("join", "dry-run", format!("{to}: {shown}"));
            return Ok(());
        }
        // A Ready Node of this name now (the old kubelet came back): kubeadm would refuse.
        if let Ok(n) = self.nodes.get(node).await {
            if n.ready.as_deref() == Some("True") {
                return Err(ReplaceError::ReadyNodeExists {
                    node: node.to_owned(),
                });
            }
        }
        self.may_send(run, "join", if hook { "join hook" } else { "kubeadm join" })
            .await?;
        crash_point("join-sent");
        let redact = |s: &str| {
            let mut s = s.replace(&secret, "<redacted>");
            if let Some(k) = &certificate_key {
                s = s.replace(k.as_str(), "<redacted>");
            }
            s
        };
        let what = if let Some(host) = &host {
            self.note(node, format!("replace: `{shown}` over SSH"));
            let limit = Duration::from_secs(run.r.settings.join_timeout_s);
            let sent = self
                .replace_ssh(run, "join", (m, host), &join.command(false), limit, &shown)
                .await;
            self.not_sent(run, "join", &sent)?;
            sent.map_err(|e| run.fail("join", redact(&e.to_string())))?;
            format!("kubeadm join done on {node}")
        } else {
            self.note(
                node,
                format!(
                    "replace: join command handed to the hook {:?}",
                    run.r.settings.hook
                ),
            );
            self.run_hook(run, &join.command(false), kept.control_plane)
                .await
                .map_err(|e| run.fail("join", redact(&e)))?;
            "join command handed to the provisioning hook".to_owned()
        };
        self.replace_outcome(run, "join", &what).await?;
        run.push("join", "done", what);
        Ok(())
    }

    async fn run_hook(
        &self,
        run: &Run<'_>,
        command: &str,
        control_plane: bool,
    ) -> Result<(), String> {
        let hook = &run.r.settings.hook;
        let (program, args) = hook.split_first().ok_or("no hook")?;
        let child = tokio::process::Command::new(program)
            .args(args)
            .env("OOB_NODE", run.node)
            .env("OOB_JOIN_COMMAND", command)
            .env(
                "OOB_CONTROL_PLANE",
                if control_plane { "true" } else { "false" },
            )
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(KUBEADM_LIMIT, child)
            .await
            .map_err(|_| {
                format!(
                    "the hook {program} did not finish within {} s",
                    KUBEADM_LIMIT.as_secs()
                )
            })?
            .map_err(|e| format!("the hook {program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "the hook {program} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Step 7: The Node registered (cordoned at first sight, so nothing is scheduled before the
    /// health check) and Ready on the board the BMC reports.
    async fn replace_registered(
        &self,
        run: &mut Run<'_>,
        board: &Board,
    ) -> Result<NodeInfo, ReplaceError> {
        let node = run.node;
        if self.dry_run {
            run.push(
                "registered",
                "dry-run",
                format!(
                    "would wait up to {} s for Node {node} Ready with systemUUID {}, cordoning it at first sight",
                    run.r.settings.join_timeout_s,
                    board.uuid.as_deref().unwrap_or("(any)")
                ),
            );
            return Ok(NodeInfo {
                system_uuid: board.uuid.clone(),
                unschedulable: true,
                ..NodeInfo::unknown(node)
            });
        }
        let done_before = self.replace_done(run, "registered")?.is_some();
        if !done_before {
            self.replace_intent(run, "registered", "wait for the Node")
                .await?;
        }
        let limit = Duration::from_secs(run.r.settings.join_timeout_s);
        let start = tokio::time::Instant::now();
        // Cordoned at first sight, once: a resumed run past this step finds it uncordoned
        // on purpose.
        let mut cordoned = done_before;
        let mut polls: u64 = 0;
        loop {
            match self.nodes.get(node).await {
                Ok(n) => {
                    if !cordoned && !n.annotations.contains_key(CORDONED_ANNOTATION) {
                        // Both writes, or tried again at the next look (never Ready and
                        // uncordoned before the health check).
                        let cordon = if n.unschedulable {
                            self.nodes
                                .annotate(node, CORDONED_ANNOTATION, Some("true"))
                                .await
                        } else {
                            self.nodes.cordon_as_oob(node, true).await
                        };
                        if let Err(e) = cordon {
                            tracing::warn!(node, error = %e, "cordoning the new Node failed; trying again");
                            tokio::time::sleep(REGISTER_POLL).await;
                            if start.elapsed() >= limit {
                                return Err(
                                    run.fail("registered", format!("cordoning the new Node: {e}"))
                                );
                            }
                            continue;
                        }
                        self.note(
                            node,
                            "replace: the Node registered; cordoned until the health check",
                        );
                    }
                    cordoned = true;
                    if let (Some(found), Some(expected)) = (&n.system_uuid, &board.uuid) {
                        if !found.eq_ignore_ascii_case(expected) {
                            return Err(ReplaceError::WrongBoard {
                                node: node.to_owned(),
                                found: found.clone(),
                                expected: expected.clone(),
                            });
                        }
                    }
                    if n.ready.as_deref() == Some("True") {
                        let what = format!(
                            "Node {node} registered and Ready (systemUUID {}, bootID {})",
                            n.system_uuid.as_deref().unwrap_or("?"),
                            n.boot_id.as_deref().unwrap_or("?")
                        );
                        if !done_before {
                            self.note(node, format!("replace: {what}"));
                            self.replace_outcome(run, "registered", &what).await?;
                        }
                        run.push(
                            "registered",
                            if done_before { "journaled" } else { "done" },
                            what,
                        );
                        return Ok(n);
                    }
                }
                Err(NodeOpsError::NotFound { .. }) => {}
                Err(e) => tracing::warn!(node, error = %e, "reading the Node while waiting for it"),
            }
            polls += 1;
            if polls % 30 == 0 {
                // The per-node lock renewed while waiting (a minute between renewals).
                self.renew_lock(run).await?;
            }
            if start.elapsed() >= limit {
                return Err(ReplaceError::NotRegistered {
                    node: node.to_owned(),
                    board: board
                        .uuid
                        .as_ref()
                        .map(|u| format!(" on board {u}"))
                        .unwrap_or_default(),
                    after_s: limit.as_secs(),
                    sent: if self
                        .journal
                        .entry(&run.key("join"))?
                        .and_then(|e| e.outcome)
                        .is_none()
                    {
                        " (the join was sent before oob stopped and may not have run: run `kubeadm join` by hand, `oob join-command` prints one)".into()
                    } else {
                        String::new()
                    },
                });
            }
            tokio::time::sleep(REGISTER_POLL).await;
        }
    }

    /// Step 8a: The recorded labels, annotations and taints, back on the new Node.
    async fn replace_restore(
        &self,
        run: &mut Run<'_>,
        rejoin: &dyn Rejoin,
        kept: &Kept,
    ) -> Result<(), ReplaceError> {
        if let Some(detail) = self.replace_done(run, "restore")? {
            run.push("restore", "journaled", detail);
            return Ok(());
        }
        let node = run.node;
        let annotations = &kept.annotations;
        let what = format!(
            "restored {} labels ({}), {} annotations, {} taints ({})",
            kept.labels.len(),
            kept.labels.keys().cloned().collect::<Vec<_>>().join(", "),
            annotations.len(),
            kept.taints.len(),
            kept.taints
                .iter()
                .map(|t| format!("{}:{}", t.key, t.effect))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self.dry_run {
            run.push("restore", "dry-run", format!("would have {what}"));
            return Ok(());
        }
        self.replace_intent(run, "restore", "restore labels and taints")
            .await?;
        rejoin
            .restore(node, &kept.labels, annotations)
            .await
            .map_err(|e| run.fail("restore", e.to_string()))?;
        for t in &kept.taints {
            let taint = Taint {
                key: t.key.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
            };
            self.nodes
                .set_taint(node, &t.key, &t.effect, Some(taint))
                .await
                .map_err(|e| run.fail("restore", e.to_string()))?;
        }
        self.replace_finish(run, "restore", what).await?;
        Ok(())
    }

    /// Step 8b: The runbook's health check before the node takes pods (not journaled: it only
    /// reads, and runs again on a resumed replacement).
    async fn replace_health(
        &self,
        run: &mut Run<'_>,
        registered: &NodeInfo,
        host: Option<&str>,
    ) -> Result<(), ReplaceError> {
        if self.replace_done(run, "uncordon")?.is_some() {
            run.push("health", "journaled", "passed before the uncordon");
            return Ok(());
        }
        if self.dry_run {
            run.push("health", "dry-run", "would run the host checks over SSH");
            return Ok(());
        }
        let mut n = registered.clone();
        if let Some(h) = host {
            if n.addresses.is_empty() {
                n.addresses.push(("InternalIP".into(), h.to_owned()));
            }
        }
        let s = Subject {
            machine: run.r.machine,
            node: &n,
            episode: 0,
            findings: &[],
            evidence: &[],
            verdict: "replaced",
            alive: true,
            ssh_up: true,
            boot_before: None,
            cause: None,
        };
        self.health_failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(run.node);
        match self.health_check(&s).await {
            Ok(()) => {
                run.push(
                    "health",
                    "done",
                    "kubelet and runtime running, no critical finding",
                );
                Ok(())
            }
            Err(done) => Err(ReplaceError::Unhealthy {
                node: run.node.to_owned(),
                detail: done.outcome().1.to_owned(),
            }),
        }
    }

    /// Step 8c: Uncordon (unless someone else had cordoned the old Node: that stays).
    async fn replace_uncordon(&self, run: &mut Run<'_>, kept: &Kept) -> Result<(), ReplaceError> {
        if let Some(detail) = self.replace_done(run, "uncordon")? {
            run.push("uncordon", "journaled", detail);
            return Ok(());
        }
        let node = run.node;
        let theirs = kept.cordoned_by_others;
        let what = if theirs {
            format!("{node} left cordoned: someone else had cordoned it before the replacement")
        } else {
            format!("{node} uncordoned")
        };
        if self.dry_run {
            run.push("uncordon", "dry-run", format!("would have {what}"));
            return Ok(());
        }
        self.replace_intent(run, "uncordon", "uncordon").await?;
        let uncordon = if theirs {
            self.nodes.annotate(node, CORDONED_ANNOTATION, None).await
        } else {
            self.nodes.cordon_as_oob(node, false).await
        };
        uncordon.map_err(|e| run.fail("uncordon", e.to_string()))?;
        self.replace_finish(run, "uncordon", what).await?;
        Ok(())
    }

    /// Step 8d: The replacement closed: an Event, the end of the fault report. The ladder's
    /// stage is the service's: a node awaiting replacement that is Ready goes back to Healthy
    /// there (its recovery), as with any node repaired by hand.
    async fn replace_close(&self, run: &mut Run<'_>, board: &Board) -> Result<(), ReplaceError> {
        let node = run.node;
        if self.dry_run {
            run.push(
                "close",
                "dry-run",
                "would close the replacement and write the end of the fault report",
            );
            return Ok(());
        }
        let what = format!(
            "replaced and rejoined{}{}",
            if run.out.control_plane {
                " (control plane)"
            } else {
                ""
            },
            if board.changed {
                format!("; new board {}", board.uuid.as_deref().unwrap_or("?"))
            } else {
                String::new()
            }
        );
        self.replace_intent(run, "close", "close").await?;
        self.note(node, format!("replace: {what}"));
        if let Err(e) = self.report_end(node, &run.prefix, &what) {
            tracing::warn!(node, error = %e, "writing the end of the fault report failed");
        }
        self.follow_up(
            node,
            crate::report::message::Kind::Replaced,
            "replaced",
            Some(format!("{}/replaced", run.prefix)),
            &format!("{node} was replaced and rejoined the cluster: {what}"),
        )
        .await;
        self.replace_outcome(run, "close", &what).await?;
        run.push("close", "done", what);
        Ok(())
    }

    /// The end of the episode's fault report: a Markdown file next to it that says what was
    /// replaced and when the node came back.
    fn report_end(&self, node: &str, prefix: &str, what: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.reports_dir)?;
        let id = prefix.rsplit('/').next().unwrap_or_default();
        let path = self.reports_dir.join(format!("{node}-{id}-closed.md"));
        let text = format!(
            "# {node}: {what}\n\nClosed {} by oob.\n\n## Timeline\n\n{}",
            crate::clock::rfc3339(self.now_ms()),
            self.journal
                .timeline(node, self.episode_start(node))
                .unwrap_or_default()
                .iter()
                .map(|(at, w)| format!("- {} {w}\n", crate::clock::rfc3339(*at)))
                .collect::<String>()
        );
        std::fs::write(&path, text)?;
        self.note(node, format!("fault report closed: {}", path.display()));
        Ok(())
    }
}

#[cfg(test)]
mod tests;
