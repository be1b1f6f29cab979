//! A machine's looks beyond liveness: the BMC (power state, new SEL entries; a BMC without a
//! SEL is said once) and the host's own hardware over SSH (SMART, NIC counters), each turned
//! into findings against the baselines kept with the position.

use tracing::warn;

use super::{MachineState, Service};

use crate::config::Machine;
use crate::remedy::executor::SelRead;
use crate::verdict::Evidence;

impl Service {
    /// A look at the BMC: its power state into `evidence`, new SEL findings into the position
    /// (and the evidence). A BMC without a SEL is said once and judged on power alone. The
    /// error, when the BMC did not answer.
    pub(super) async fn look_out_of_band(
        &self,
        m: &Machine,
        st: &mut MachineState,
        evidence: &mut Evidence,
        op: &str,
    ) -> Option<crate::bmc::BmcError> {
        let name = m.name.as_str();
        let started = std::time::Instant::now();
        let result = self.exec.confirm(m, &mut st.position.sel_seen).await;
        self.bmc_timing(op, started);
        let error = match result {
            Ok(look) => {
                match (&look.sel, st.sel_noted) {
                    (SelRead::Absent(why), false) => {
                        self.exec.note(
                            name,
                            format!(
                                "the BMC exposes no SEL ({why}); judged on its power state alone"
                            ),
                        );
                        st.sel_noted = true;
                    }
                    (SelRead::Failed(why), _) => {
                        warn!(node = name, error = %why, "sel read failed; power state still counts");
                    }
                    _ => {}
                }
                self.add_findings(name, st, look.findings);
                evidence.power = Some(look.power);
                evidence.bmc_reachable = Some(true);
                None
            }
            Err(e) => {
                evidence.bmc_reachable = Some(false);
                Some(e)
            }
        };
        evidence.findings = st.position.findings.clone();
        error
    }

    /// The host's drives and NICs over SSH: findings against the persisted baseline (only
    /// a drive's state, new or rising counters count). A host that does not answer SSH is
    /// logged; liveness decides about it, not this poll.
    pub(super) async fn poll_host(&self, m: &Machine, st: &mut MachineState, host: &str) {
        let name = m.name.as_str();
        let started = std::time::Instant::now();
        let polled = self.hardware.poll(m, host).await;
        self.bmc_timing("host", started);
        let (drives, nics) = match polled {
            Ok(both) => both,
            Err(e) => {
                // Said when it starts failing (or fails differently), not every interval.
                let e = e.to_string();
                if st.host_poll_error.as_deref() != Some(e.as_str()) {
                    warn!(node = name, error = %e, "host hardware poll failed; said again only when it changes");
                    st.host_poll_error = Some(e);
                }
                return;
            }
        };
        if st.host_poll_error.take().is_some() {
            tracing::info!(node = name, "host hardware poll works again");
        }
        let mut baseline = st.position.host_baseline.take().unwrap_or_default();
        let limits = self.config.policy.hardware();
        let found = baseline.update(&drives, &nics, self.exec.now_ms(), limits);
        st.position.host_baseline = Some(baseline);
        self.add_findings(name, st, found);
    }

    /// Findings not already in the episode (same code on the same component), noted.
    fn add_findings(&self, name: &str, st: &mut MachineState, found: Vec<crate::health::Finding>) {
        for f in found {
            let known = st
                .position
                .findings
                .iter()
                .any(|g| g.code == f.code && g.component == f.component);
            if known {
                continue;
            }
            self.exec.note(
                name,
                format!(
                    "new {} finding: {} ({}{})",
                    f.severity.name(),
                    f.code,
                    f.component
                        .as_deref()
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default(),
                    f.detail
                ),
            );
            st.position.findings.push(f);
        }
    }

    /// A plan's look at the BMC: power and SEL findings into `evidence` only. A plan changes
    /// nothing: no position, no baseline, no timeline line.
    pub(super) async fn look_for_plan(
        &self,
        m: &Machine,
        position: &mut crate::remedy::journal::Position,
        evidence: &mut Evidence,
    ) {
        let mut seen = position.sel_seen.clone();
        match self.exec.confirm(m, &mut seen).await {
            Ok(look) => {
                evidence.power = Some(look.power);
                evidence.bmc_reachable = Some(true);
                position.findings.extend(look.findings);
            }
            Err(_) => evidence.bmc_reachable = Some(false),
        }
    }
}
