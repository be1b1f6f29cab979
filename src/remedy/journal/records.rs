//! What the journal stores, typed: an action's intent and outcome, what was seen before it
//! was sent, a node's ladder position with its pending remedy, the breaker.

use serde::Serialize;

use crate::remedy::stage::Stage;

/// What was observed before a step was sent: what its resumption after a crash goes by.
/// Stored as JSON in the `before` column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Before {
    /// The Node's bootID (a new one afterwards means the reboot happened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The BMC's power state, as it reads (`On`, `Off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<String>,
}

/// One action, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// `node/episode/step`: the same remediation step always has the same key.
    pub key: String,
    pub node: String,
    pub action: String,
    pub intent_ms: u64,
    /// What was observed before sending.
    pub before: Before,
    /// `None` while in flight.
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub done_ms: Option<u64>,
}

/// What writing an intent found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Recorded now: go ahead and send.
    New,
    /// The same step was started before (a crash or a restart): do not send it again.
    Seen(Entry),
}

/// A node's persisted ladder position, with what a restart must not forget: the findings
/// of the current episode and the SEL entries already seen (else a restart would re-baseline
/// the log, lose a drive fault and hand a fenced node back).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Position {
    pub stage: Stage,
    /// Incremented each time the node leaves Healthy; part of every idempotency key.
    pub episode: u64,
    /// When the last episode ended (cooldown).
    pub recovered_ms: Option<u64>,
    pub findings: Vec<crate::health::Finding>,
    /// SEL entry ids already looked at; `None` before the first look.
    pub sel_seen: Option<std::collections::BTreeSet<String>>,
    /// The node's bootID when the current reboot (or power-on) was sent: the reboot is
    /// verified by its change, also across a restart.
    pub boot_before: Option<String>,
    /// A mutating remedy decided and about to be sent (written *before* the request leaves):
    /// a restart resumes exactly this remedy under its journal key, never re-judges its way
    /// into a second action in the same episode.
    pub pending: Option<Pending>,
    /// SMART and NIC counters of the last host poll over SSH (`None` before the first).
    pub host_baseline: Option<crate::gather::host::Baseline>,
}

/// A remedy in flight, persisted with the stage it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Pending {
    pub remedy: crate::remedy::stage::Remedy,
    /// The stage the ladder was in before it (where a busy node lock sends it back).
    pub from: Stage,
    pub at_ms: u64,
}

/// The position's fields added after the first schema, stored as one JSON column.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
pub(super) struct Extra {
    #[serde(default)]
    pub(super) boot_before: Option<String>,
    #[serde(default)]
    pub(super) pending: Option<Pending>,
    #[serde(default)]
    pub(super) host_baseline: Option<crate::gather::host::Baseline>,
}

/// The breaker, when open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Breaker {
    pub reason: String,
    pub since_ms: u64,
}
