//! Verified power actions over any [`Bmc`]: a [`PowerAction`] becomes one or two
//! [`PowerRequest`]s, each followed by polling until the target state is observed or the
//! deadline passes. "Done" means observed, never "the BMC said 204".
//!
//! Semantics (documented in the README):
//! - already in the target state is success, nothing is sent;
//! - `cycle` is verified Off, then verified On; on a host that is already Off it is just On;
//!   when Off is not observed in time, On is never sent;
//! - `reset` is a hard restart verified by observing On afterwards (the ladder verifies the
//!   reboot itself by the node's bootID); on a host that is Off it is done as On;
//! - a request whose answer was lost (connection dropped) is never re-sent: the state is
//!   polled, and only what is observed counts.

use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;
use tracing::{debug, info, warn};

use super::{Bmc, BmcError, PowerAction, PowerRequest, PowerState, RequestAck};

/// How long to wait for a state and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct PowerTiming {
    pub timeout: Duration,
    pub poll: Duration,
}

impl Default for PowerTiming {
    fn default() -> Self {
        Self {
            timeout: crate::timeouts::POWER_VERIFY,
            poll: crate::timeouts::POWER_POLL,
        }
    }
}

/// What happened, as observed.
#[derive(Debug, Clone, Serialize)]
pub struct PowerOutcome {
    pub action: PowerAction,
    /// The last observed state.
    pub power: PowerState,
    /// The target state was observed within the deadline.
    pub verified: bool,
    /// Nothing was sent: the system was already in the target state.
    pub already: bool,
    /// The requests that were sent, in order.
    pub sent: Vec<PowerRequest>,
    pub elapsed_ms: u64,
}

/// The requests that carry out `action` from `initial`, in order (empty: already there).
/// Pure; [`execute`] sends them one by one, each verified before the next.
pub fn plan(action: PowerAction, initial: PowerState) -> Vec<PowerRequest> {
    use PowerAction as A;
    use PowerRequest as R;
    match (action, initial) {
        (A::On, PowerState::On) | (A::Off | A::Soft, PowerState::Off) => vec![],
        (A::On | A::Reset | A::Cycle, PowerState::Off) | (A::On, _) => vec![R::On],
        (A::Off, _) => vec![R::ForceOff],
        (A::Soft, _) => vec![R::GracefulShutdown],
        (A::Reset, _) => vec![R::ForceRestart],
        (A::Cycle, _) => vec![R::ForceOff, R::On],
    }
}

/// The state that shows a request took effect.
fn target_of(request: PowerRequest) -> PowerState {
    match request {
        PowerRequest::On | PowerRequest::ForceRestart | PowerRequest::GracefulRestart => {
            PowerState::On
        }
        PowerRequest::ForceOff | PowerRequest::GracefulShutdown => PowerState::Off,
    }
}

/// Carry out `action` and verify it.
pub async fn execute(
    bmc: &dyn Bmc,
    action: PowerAction,
    timing: PowerTiming,
) -> Result<PowerOutcome, BmcError> {
    let start = Instant::now();
    let initial = bmc.power_state().await?;
    let requests = plan(action, initial);
    let mut run = Run {
        bmc,
        timing,
        sent: Vec::new(),
    };
    let (mut power, mut verified, mut already) = (initial, true, requests.is_empty());
    for request in requests {
        (power, verified, already) = run.step(request, target_of(request)).await?;
        if !verified {
            warn!(action = action.as_str(), power = %power, request = ?request, "not verified, stopping");
            break;
        }
    }
    let outcome = PowerOutcome {
        action,
        power,
        verified,
        already,
        sent: run.sent,
        elapsed_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    info!(
        action = action.as_str(),
        power = %outcome.power,
        verified = outcome.verified,
        already = outcome.already,
        elapsed_ms = outcome.elapsed_ms,
        "power action finished"
    );
    Ok(outcome)
}

struct Run<'a> {
    bmc: &'a dyn Bmc,
    timing: PowerTiming,
    sent: Vec<PowerRequest>,
}

impl Run<'_> {
    /// Send one request, then wait for `target`. Returns (last state, verified, already).
    async fn step(
        &mut self,
        request: PowerRequest,
        target: PowerState,
    ) -> Result<(PowerState, bool, bool), BmcError> {
        let ack = match self.bmc.request_power(request).await {
            Ok(ack) => ack,
            // The answer was lost, not necessarily the request: never re-send, look instead.
            Err(e) if e.is_retriable() => {
                warn!(request = ?request, error = %e, "power request outcome unknown, polling state");
                self.sent.push(request);
                let (state, ok) = self.wait_for(target).await?;
                return Ok((state, ok, false));
            }
            Err(e) => return Err(e),
        };
        self.sent.push(request);
        if ack == RequestAck::Conflict {
            let state = self.bmc.power_state().await?;
            if state == target {
                return Ok((state, true, true));
            }
            return Err(BmcError::Conflict {
                request: format!("{request:?}"),
                state: state.to_string(),
            });
        }
        let (state, ok) = self.wait_for(target).await?;
        Ok((state, ok, false))
    }

    /// Poll until `target` is observed or the deadline passes. Retriable errors while
    /// polling are tolerated (BMCs stall during power transitions); others end the wait.
    async fn wait_for(&self, target: PowerState) -> Result<(PowerState, bool), BmcError> {
        let deadline = Instant::now() + self.timing.timeout;
        let mut last = PowerState::Unknown;
        loop {
            tokio::time::sleep(self.timing.poll).await;
            match self.bmc.power_state().await {
                Ok(state) => {
                    debug!(power = %state, target = %target, "power state polled");
                    last = state;
                    if state == target {
                        return Ok((state, true));
                    }
                }
                Err(e) if e.is_retriable() => {
                    debug!(error = %e, "power state poll failed, will retry");
                }
                Err(e) => return Err(e),
            }
            if Instant::now() + self.timing.poll > deadline {
                return Ok((last, false));
            }
        }
    }
}

#[cfg(test)]
mod tests;
