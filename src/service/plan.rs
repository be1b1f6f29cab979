//! `oob plan`: what the service would do for each machine now, from the journaled
//! positions, through the same probe, look, judgement and stage machine as a round; nothing
//! is carried out (the storm guard is asked what it would say, nothing is admitted).

use super::{PlanRow, Service};

use crate::remedy::decide::{decide, Decision};
use crate::remedy::executor::PAUSE_ANNOTATION;

impl Service {
    /// What the service would do for each machine now (`oob plan`): probe, judge and step
    /// from the journaled position; nothing is carried out. A step the storm guard would
    /// hold back (etcd quorum, the unhealthy share, the breaker) says so.
    pub async fn plan(&self) -> Vec<PlanRow> {
        let mut rows = Vec::new();
        for m in &self.machines {
            let (mut evidence, node, _) = self.probe(m).await;
            let Some(st) = self.lock().get(&m.name).cloned() else {
                continue;
            };
            // A copy: the plan's look adds its SEL findings here, never to the real position.
            let mut position = st.position.clone();
            let policy = self.decide_policy();
            let now = self.exec.now_ms();
            let mut decision = decide(&position, &evidence, now, &policy);
            if let Decision::Gather(needs) = &decision {
                if needs.bmc_look {
                    self.look_for_plan(m, &mut position, &mut evidence).await;
                }
                decision = decide(&position, &evidence, now, &policy);
            }
            let Decision::Act(plan) = decision else {
                continue;
            };
            let (j, step) = (plan.judgement, plan.step);
            let paused = node.as_ref().is_some_and(|n| {
                n.annotations
                    .get(PAUSE_ANNOTATION)
                    .is_some_and(|v| v != "false")
            });
            // What the storm guard would say now (asked, not marked: nothing is admitted).
            let held = if super::act::mutating(step.remedy) {
                let answering = self.takes_a_vote(m, &evidence, step.remedy);
                let (fleet, storm) = self.fleet(&m.name, answering).await;
                match crate::remedy::guard::admit(fleet, &storm, now, st.position.recovered_ms) {
                    crate::remedy::guard::Admission::Go => None,
                    crate::remedy::guard::Admission::Hold { reason }
                    | crate::remedy::guard::Admission::Blocked { reason }
                    | crate::remedy::guard::Admission::Wait { reason }
                    | crate::remedy::guard::Admission::Trip { reason } => Some(reason),
                }
            } else {
                None
            };
            rows.push(PlanRow {
                node: m.name.clone(),
                stage: st.position.stage.name().into(),
                verdict: j.verdict.name(),
                reasons: j.reasons,
                next: step.next.name().into(),
                remedy: step.remedy.name().into(),
                paused,
                held,
            });
        }
        rows
    }
}
