//! `oob plan`: what the service would do for each machine now, from the journaled
//! positions, through the same probe, look, judgement and stage machine as a round; nothing
//! is carried out (the storm guard is not asked).

use super::{PlanRow, Service};
use crate::clock::now_ms;
use crate::remedy::executor::PAUSE_ANNOTATION;
use crate::remedy::stage::{Remedy, Stage};
use crate::verdict::{judge, Policy as VerdictPolicy};

impl Service {
    /// What the service would do for each machine now (`oob plan`): probe, judge and step
    /// from the journaled position; nothing is carried out (the storm guard is not asked).
    pub async fn plan(&self) -> Vec<PlanRow> {
        let mut rows = Vec::new();
        for m in &self.machines {
            let (mut evidence, node, _) = self.probe(m).await;
            let Some(st) = self.lock().get(&m.name).cloned() else {
                continue;
            };
            evidence.findings = st.position.findings.clone();
            let now = now_ms();
            let policy = self.config.policy.stages();
            let mut j = judge(&evidence, &VerdictPolicy::default());
            let mut step = st.position.stage.step(&j.verdict, now, &policy);
            if let Some(p) = st.position.pending {
                // Decided before a restart: the service resumes exactly this.
                step = crate::remedy::stage::Step {
                    next: st.position.stage,
                    remedy: p.remedy,
                };
            } else if step.remedy == Remedy::ConfirmOutOfBand
                || matches!(st.position.stage, Stage::Confirm { .. })
            {
                self.look_for_plan(m, &st, &mut evidence).await;
                j = judge(&evidence, &VerdictPolicy::default());
                let confirm = if step.remedy == Remedy::ConfirmOutOfBand {
                    step.next
                } else {
                    st.position.stage
                };
                step = confirm.step(&j.verdict, now, &policy);
            }
            let paused = node.as_ref().is_some_and(|n| {
                n.annotations
                    .get(PAUSE_ANNOTATION)
                    .is_some_and(|v| v != "false")
            });
            rows.push(PlanRow {
                node: m.name.clone(),
                stage: st.position.stage.name().into(),
                verdict: j.verdict.name(),
                reasons: j.reasons,
                next: step.next.name().into(),
                remedy: step.remedy.name().into(),
                paused,
            });
        }
        rows
    }
}
