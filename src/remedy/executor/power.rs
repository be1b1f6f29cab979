//! The executor's power steps: identity, governor, per-node lock and journal around every BMC
//! power request; a step found in flight after a restart is resumed from the real state,
//! never sent again; outcomes verified by observed state.

use super::{Done, Executor, Subject};
use crate::bmc::connect::Connected;
use crate::bmc::power::{self, PowerTiming};
use crate::bmc::{PowerAction, PowerRequest, PowerState};
use crate::clock::rfc3339;
use crate::remedy::journal::{Before, Intent};

impl Executor {
    /// A BMC power step (soft restart request, cycle, on, off), journaled and verified.
    pub(super) async fn power_step(&self, s: &Subject<'_>, step: &str, what: PowerStep) -> Done {
        let node = &s.machine.name;
        let key = s.key(step);
        if self.dry_run {
            let d = format!("dry run: would {}", what.describe());
            self.note(node, d.clone());
            return Done::Ok(d);
        }
        // The connection outlives the locked work: a step stopped because its lock was lost
        // still logs out of the BMC (a session slot is not left behind).
        let conn: tokio::sync::OnceCell<Connected> = tokio::sync::OnceCell::new();
        let run = async {
            let c = match conn.get_or_try_init(|| self.connect(s.machine)).await {
                Ok(c) => c,
                Err(e) => return Done::Failed(format!("BMC: {e}")),
            };
            self.power_connected(s, c, &key, what).await
        };
        let done = match self.locked(node, run).await {
            Ok(done) | Err(done) => done,
        };
        if let Some(c) = conn.get() {
            c.bmc.close().await;
        }
        done
    }

    async fn power_connected(
        &self,
        s: &Subject<'_>,
        c: &Connected,
        key: &str,
        what: PowerStep,
    ) -> Done {
        let node = &s.machine.name;
        if let Err(refused) = self.check_identity(s, c).await {
            return refused;
        }
        let state = match c.bmc.power_state().await {
            Ok(p) => p,
            Err(e) => return Done::Failed(format!("BMC power state: {e}")),
        };
        let before = Before {
            boot_id: s.node.boot_id.clone(),
            power: Some(state.to_string()),
        };
        match self.intent(key, node, what.name(), &before).await {
            Err(done) => return done,
            Ok(Intent::Seen(e)) if e.outcome.is_some() => {
                let d = format!(
                    "{} already done at {} ({}); not sent again",
                    what.name(),
                    rfc3339(e.done_ms.unwrap_or(e.intent_ms)),
                    e.outcome.as_deref().unwrap_or("")
                );
                self.note(node, d.clone());
                return Done::Ok(d);
            }
            Ok(Intent::Seen(e)) => {
                // Started before a crash: whether it reached the BMC is unknown. Never resend;
                // finish what the real state says is unfinished.
                self.note(
                    node,
                    format!(
                        "resuming {} journaled at {}: power is {state}, not sending it again",
                        what.name(),
                        rfc3339(e.intent_ms)
                    ),
                );
                let done = self.resume(s, c, what, state, &e.before).await;
                self.outcome(key, &done).await;
                return done;
            }
            Ok(Intent::New) => {}
        }
        let Some(permit) = self
            .governor
            .acquire(&s.machine.bmc.to_string(), crate::timeouts::GOVERNOR_WAIT)
            .await
        else {
            let done = Done::Failed(format!(
                "the BMC's governor did not give a turn within {} s",
                crate::timeouts::GOVERNOR_WAIT.as_secs()
            ));
            self.outcome(key, &done).await;
            return done;
        };
        let done = match what {
            PowerStep::SoftRestart => {
                match c.bmc.request_power(PowerRequest::GracefulRestart).await {
                    Ok(_) => Done::Ok("graceful restart requested through the BMC".into()),
                    Err(e) if e.is_unsupported() => Done::Skip(format!("no soft reboot path: {e}")),
                    Err(e) => Done::Failed(format!("graceful restart: {e}")),
                }
            }
            PowerStep::Action(action) => verified(c, action).await,
        };
        drop(permit);
        self.outcome(key, &done).await;
        done
    }

    /// Finish a power step found in flight after a restart, from the observed state.
    /// `before` is what the intent recorded (bootID, power).
    async fn resume(
        &self,
        s: &Subject<'_>,
        c: &Connected,
        what: PowerStep,
        state: PowerState,
        before: &Before,
    ) -> Done {
        let boot_before = before.boot_id.clone();
        let rebooted = boot_before.is_some() && s.node.boot_id != boot_before;
        if let (PowerStep::Action(PowerAction::Cycle), PowerState::On, false) =
            (what, state, rebooted)
        {
            // On, same boot: the off may have been accepted and not applied yet, or never
            // sent. Watch (bounded) for it to take effect; never send it again.
            let until = tokio::time::Instant::now() + c.timing.timeout;
            while tokio::time::Instant::now() < until {
                tokio::time::sleep(c.timing.poll).await;
                if let Ok(PowerState::Off) = c.bmc.power_state().await {
                    self.note(
                        &s.machine.name,
                        "the interrupted cycle's off took effect; completing it with on",
                    );
                    return verified(c, PowerAction::On).await;
                }
            }
            return Done::Ok(format!(
                "power stayed On for {} s and the node did not reboot: the interrupted off never took effect; not re-sent, the ladder decides next",
                c.timing.timeout.as_secs()
            ));
        }
        if rebooted {
            return Done::Ok(format!(
                "completed before the restart: the node rebooted (bootID {} → {})",
                boot_before.unwrap_or_default(),
                s.node.boot_id.clone().unwrap_or_default()
            ));
        }
        match (what, state) {
            // The cycle's Off happened (or the machine is off): its remaining half is On.
            (PowerStep::Action(PowerAction::Cycle | PowerAction::On), PowerState::Off) => {
                verified(c, PowerAction::On).await
            }
            (PowerStep::Action(PowerAction::Off), PowerState::On) => Done::Failed(
                "power off was journaled but the machine is on; a person must look (not re-sent)"
                    .into(),
            ),
            (_, state) => Done::Ok(format!(
                "resumed without resending: power is {state}; the ladder verifies the boot"
            )),
        }
    }

    /// Soft reboot: `systemctl reboot` over SSH when the host's SSH answers; else (or when
    /// that fails) the BMC's graceful restart.
    pub async fn soft_reboot(&self, s: &Subject<'_>) -> Done {
        if let Some(done) = self.soft_reboot_over_ssh(s).await {
            return done;
        }
        self.note(
            &s.machine.name,
            "soft reboot: graceful restart through the BMC",
        );
        self.power_step(s, "soft-reboot", PowerStep::SoftRestart)
            .await
    }

    /// Hard reboot: identity, then verified off → verified on.
    pub async fn hard_reboot(&self, s: &Subject<'_>) -> Done {
        self.note(&s.machine.name, "hard reboot: power cycle through the BMC");
        self.power_step(s, "hard-reboot", PowerStep::Action(PowerAction::Cycle))
            .await
    }

    /// A person's power action on an inventory machine (`oob power VERB NODE`): the same
    /// lock, identity check, journal and verification as the ladder's steps.
    pub async fn power_action(&self, s: &Subject<'_>, action: PowerAction) -> Done {
        self.note(
            &s.machine.name,
            format!("power {} requested by a person", action.as_str()),
        );
        let step = format!("power-{}", action.as_str());
        self.power_step(s, &step, PowerStep::Action(action)).await
    }

    /// The machine was found off: identity, then verified on.
    pub async fn power_on(&self, s: &Subject<'_>) -> Done {
        self.note(&s.machine.name, "power on through the BMC (found off)");
        self.power_step(s, "power-on", PowerStep::Action(PowerAction::On))
            .await
    }
}

/// A power step the executor journals.
#[derive(Debug, Clone, Copy)]
pub(super) enum PowerStep {
    SoftRestart,
    Action(PowerAction),
}

impl PowerStep {
    fn name(self) -> &'static str {
        match self {
            Self::SoftRestart => "graceful-restart",
            Self::Action(a) => a.as_str(),
        }
    }

    fn describe(self) -> String {
        match self {
            Self::SoftRestart => "request a graceful restart through the BMC".into(),
            Self::Action(a) => format!("power {} through the BMC (verified)", a.as_str()),
        }
    }
}

async fn verified(c: &Connected, action: PowerAction) -> Done {
    let timing: PowerTiming = c.timing;
    match power::execute(c.bmc.as_ref(), action, timing).await {
        Ok(o) if o.verified => Done::Ok(format!(
            "power {} verified: {} observed after {} ms (sent: {})",
            action.as_str(),
            o.power,
            o.elapsed_ms,
            if o.sent.is_empty() {
                "nothing, already there".to_owned()
            } else {
                o.sent
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect::<Vec<_>>()
                    .join(" then ")
            }
        )),
        Ok(o) => Done::Failed(format!(
            "power {} NOT verified: still {} after {} ms",
            action.as_str(),
            o.power,
            o.elapsed_ms
        )),
        Err(e) => Done::Failed(format!("power {}: {e}", action.as_str())),
    }
}
