//! The one decision of a round, pure: from where the machine stands ([`Position`]) and what
//! was gathered ([`Evidence`]), the judgement, the next stage, the remedy and the timeline
//! lines that say why. The service's round, `oob plan` and `oob check` all decide here.
//!
//! A stage says what it needs before it can be judged: Confirm needs the BMC's look (power,
//! SEL). When the evidence lacks it, the decision is [`Decision::Gather`]; the gatherer
//! collects it and the round decides again with it. Entering Confirm and judging it with the
//! BMC's answer is therefore one decision, not a remedy that loops back a round later.

use super::journal::Position;
use super::stage::{Policy as StagePolicy, Stage, Step};
use crate::verdict::{
    dark, judge, DownCause, Evidence, Judgement, Policy as VerdictPolicy, Verdict,
};

/// Everything a decision is tuned by.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub stages: StagePolicy,
    pub verdict: VerdictPolicy,
    /// `[replacement] enabled`: a node released as repaired is replaced by the ladder.
    pub replace: bool,
}

/// Evidence a stage asks for before it is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The BMC's power state and new SEL entries.
    pub bmc_look: bool,
    /// A few quick re-probes first, to tell a flap from an outage (entering Confirm dark).
    pub reprobe: bool,
    /// The host's own checks over SSH (an OS problem while SSH answers): a restart may be
    /// the repair.
    pub host_look: bool,
    /// The timeline line that says why (entering Confirm).
    pub note: Option<String>,
}

/// What the round does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Gather this, then decide again with it.
    Gather(Needs),
    Act(Plan),
}

/// A decided step.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub judgement: Judgement,
    pub step: Step,
    /// The episode the step belongs to (incremented when the machine leaves Healthy).
    pub episode: u64,
    /// A remedy decided before a restart, resumed as it is: the stage it was decided from.
    pub resumed_from: Option<Stage>,
    /// Timeline lines, in order.
    pub notes: Vec<String>,
}

fn healthy(v: &Verdict) -> bool {
    matches!(v, Verdict::Healthy | Verdict::Degraded)
}

/// Whether the BMC was asked this round (answered or not).
fn looked(e: &Evidence) -> bool {
    e.bmc_reachable.is_some()
}

/// The round's decision. `now` is wall-clock milliseconds (stages persist across restarts).
pub fn decide(position: &Position, evidence: &Evidence, now: u64, policy: &Policy) -> Decision {
    let e = Evidence {
        findings: position.findings.clone(),
        ..evidence.clone()
    };
    let judgement = judge(&e, &policy.verdict);
    if let Some(p) = position.pending {
        // Decided (and maybe sent) before a restart: exactly that remedy, under its journal
        // key. Judging again could read a BMC mid-reboot as "powered off" and send a second
        // action in the same episode.
        return Decision::Act(Plan {
            judgement,
            step: Step {
                next: position.stage,
                remedy: p.remedy,
            },
            episode: position.episode,
            resumed_from: Some(p.from),
            notes: vec![format!(
                "resuming {} decided at {} and stopped before it ended (a restart, a lost lock); not judged again",
                p.remedy.name(),
                crate::clock::rfc3339(p.at_ms)
            )],
        });
    }
    let before = position.stage;
    if let (Stage::AwaitReplacement { .. }, Some(repaired)) = (before, e.released) {
        if let Some(plan) = released(position, judgement.clone(), repaired, now, policy) {
            return Decision::Act(plan);
        }
    }
    let first = before.step(&judgement.verdict, now, &policy.stages);
    let entering = first.next.needs_bmc_look() && !before.needs_bmc_look();
    let confirming = before.needs_bmc_look() && !healthy(&judgement.verdict);
    let mut notes = Vec::new();
    let reasons = judgement.reasons.join(", ");
    let step = if entering || confirming {
        if !looked(&e) {
            let is_dark = dark(&e, &policy.verdict) == Some(true);
            let os_problem = matches!(
                judgement.verdict,
                Verdict::Down {
                    cause: DownCause::OsProblem
                }
            );
            return Decision::Gather(Needs {
                bmc_look: true,
                reprobe: entering && is_dark,
                host_look: os_problem && e.ssh_reachable == Some(true) && e.host.is_none(),
                note: entering.then(|| {
                    if is_dark {
                        format!("suspect: {reasons}; confirming out of band")
                    } else if position.findings.is_empty() {
                        let inside = if os_problem && e.ssh_reachable == Some(true) {
                            " and over SSH"
                        } else {
                            ""
                        };
                        format!("answering, but {reasons}; confirming out of band{inside}")
                    } else {
                        format!(
                            "hardware: {} new finding(s) while {reasons}; confirming out of band",
                            position.findings.len()
                        )
                    }
                }),
            });
        }
        if entering {
            notes.push(format!("verdict {}: {reasons}", judgement.verdict.name()));
        }
        let confirm = if entering { first.next } else { before };
        confirm.step(&judgement.verdict, now, &policy.stages)
    } else {
        first
    };
    let mut episode = position.episode;
    if matches!(before, Stage::Healthy) && !matches!(step.next, Stage::Healthy) {
        // A new episode's number is when it began (ms): unique across replicas and
        // restarts (a counter is each journal's own, and a new leader's could repeat one the
        // old leader used), and still growing.
        episode = episode.saturating_add(1).max(now);
    }
    if matches!(step.next, Stage::Suspect { .. }) && !matches!(before, Stage::Suspect { .. }) {
        notes.push(format!("suspect: {reasons}"));
    }
    if let (Stage::Suspect { failures, .. }, Stage::Healthy) = (before, step.next) {
        notes.push(format!(
            "suspect cleared: answering again after {failures} failed round(s); no action"
        ));
    }
    Decision::Act(Plan {
        judgement,
        step,
        episode,
        resumed_from: None,
        notes,
    })
}

/// A node awaiting replacement that a person released (`oob release`): repaired and the
/// policy allows it, the replacement; else the hands-off ends and the ladder goes on from
/// Healthy (a node that is Healthy already takes its usual recovery: `None`).
fn released(
    position: &Position,
    judgement: Judgement,
    repaired: bool,
    now: u64,
    policy: &Policy,
) -> Option<Plan> {
    use super::stage::Remedy;
    // Ready and healthy already (repaired in place, its kubelet back): its usual recovery;
    // a replacement would only find a Ready Node of its name.
    if matches!(judgement.verdict, Verdict::Healthy) {
        return None;
    }
    let (step, note) = if repaired && policy.replace {
        (
            Step {
                next: Stage::Replace { since: now },
                remedy: Remedy::Replace,
            },
            "released as repaired by a person: the kubeadm replacement".to_owned(),
        )
    } else {
        let why = if repaired {
            "released as repaired; the replacement is off ([replacement] enabled = false)"
        } else {
            "released by a person"
        };
        (
            Step {
                next: Stage::Healthy,
                remedy: Remedy::Nothing,
            },
            format!("{why}: hands-off ended, the ladder goes on"),
        )
    };
    Some(Plan {
        judgement,
        step,
        episode: position.episode,
        resumed_from: None,
        notes: vec![note],
    })
}

#[cfg(test)]
mod tests;
