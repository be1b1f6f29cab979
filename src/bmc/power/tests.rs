//! Table tests of the verified power executor against a scripted fake BMC.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::bmc::{Health, Identity, SelEntry};

/// A fake BMC: requests take effect after `delay_polls` state reads, unless `stuck`.
struct Fake {
    state: Mutex<(PowerState, Option<(PowerState, u32)>)>,
    delay_polls: u32,
    stuck: bool,
    conflict: bool,
    lose_answer: bool,
    sent: Mutex<Vec<PowerRequest>>,
}

impl Fake {
    fn new(initial: PowerState) -> Self {
        Self {
            state: Mutex::new((initial, None)),
            delay_polls: 2,
            stuck: false,
            conflict: false,
            lose_answer: false,
            sent: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl Bmc for Fake {
    async fn identity(&self) -> Result<Identity, BmcError> {
        unimplemented!("not used by the executor")
    }
    async fn power_state(&self) -> Result<PowerState, BmcError> {
        let mut guard = self.state.lock().unwrap();
        let (ref mut current, ref mut pending) = *guard;
        if let Some((target, polls)) = pending {
            if *polls == 0 {
                *current = *target;
                *pending = None;
            } else {
                *polls -= 1;
            }
        }
        Ok(*current)
    }
    async fn request_power(&self, request: PowerRequest) -> Result<RequestAck, BmcError> {
        self.sent.lock().unwrap().push(request);
        if self.conflict {
            return Ok(RequestAck::Conflict);
        }
        if !self.stuck {
            let target = match request {
                PowerRequest::On | PowerRequest::ForceRestart | PowerRequest::GracefulRestart => {
                    PowerState::On
                }
                PowerRequest::ForceOff | PowerRequest::GracefulShutdown => PowerState::Off,
            };
            self.state.lock().unwrap().1 = Some((target, self.delay_polls));
        }
        if self.lose_answer {
            return Err(BmcError::Transport {
                url: "fake".into(),
                detail: "connection closed before the response".into(),
            });
        }
        Ok(RequestAck::Accepted)
    }
    async fn sel(&self, _max: usize) -> Result<Vec<SelEntry>, BmcError> {
        Ok(Vec::new())
    }
    async fn clear_sel(&self) -> Result<(), BmcError> {
        Ok(())
    }
    async fn health(&self) -> Result<Health, BmcError> {
        unimplemented!("not used by the executor")
    }
    async fn close(&self) {}
}

fn fast() -> PowerTiming {
    PowerTiming {
        timeout: Duration::from_millis(200),
        poll: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn each_action_reaches_and_verifies_its_target() {
    use PowerAction as A;
    use PowerRequest as R;
    use PowerState as S;
    let table = [
        (A::On, S::Off, S::On, vec![R::On]),
        (A::Off, S::On, S::Off, vec![R::ForceOff]),
        (A::Soft, S::On, S::Off, vec![R::GracefulShutdown]),
        (A::Reset, S::On, S::On, vec![R::ForceRestart]),
        (A::Reset, S::Off, S::On, vec![R::On]),
        (A::Cycle, S::On, S::On, vec![R::ForceOff, R::On]),
        (A::Cycle, S::Off, S::On, vec![R::On]),
    ];
    for (action, initial, want, requests) in table {
        assert_eq!(
            plan(action, initial),
            requests,
            "plan {action:?} from {initial:?}"
        );
        let fake = Fake::new(initial);
        let out = execute(&fake, action, fast()).await.unwrap();
        assert!(out.verified, "{action:?} from {initial:?}");
        assert_eq!(out.power, want, "{action:?} from {initial:?}");
        assert_eq!(out.sent, requests, "{action:?} from {initial:?}");
        assert_eq!(*fake.sent.lock().unwrap(), requests);
    }
}

#[tokio::test]
async fn already_in_state_sends_nothing_and_is_success() {
    for (action, initial) in [
        (PowerAction::On, PowerState::On),
        (PowerAction::Off, PowerState::Off),
        (PowerAction::Soft, PowerState::Off),
    ] {
        let fake = Fake::new(initial);
        let out = execute(&fake, action, fast()).await.unwrap();
        assert!(out.verified && out.already);
        assert!(fake.sent.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn accepted_but_never_changing_state_is_not_verified() {
    let mut fake = Fake::new(PowerState::On);
    fake.stuck = true;
    let out = execute(&fake, PowerAction::Off, fast()).await.unwrap();
    assert!(!out.verified);
    assert_eq!(out.power, PowerState::On);
}

#[tokio::test]
async fn cycle_never_sends_on_when_off_is_not_verified() {
    let mut fake = Fake::new(PowerState::On);
    fake.stuck = true;
    let out = execute(&fake, PowerAction::Cycle, fast()).await.unwrap();
    assert!(!out.verified);
    assert_eq!(*fake.sent.lock().unwrap(), vec![PowerRequest::ForceOff]);
}

#[tokio::test]
async fn conflict_is_success_only_when_already_in_target_state() {
    let mut fake = Fake::new(PowerState::On);
    fake.conflict = true;
    let err = execute(&fake, PowerAction::Off, fast()).await.unwrap_err();
    assert!(matches!(err, BmcError::Conflict { .. }), "{err}");
}

#[tokio::test]
async fn lost_answer_is_polled_not_resent() {
    let mut fake = Fake::new(PowerState::On);
    fake.lose_answer = true;
    let out = execute(&fake, PowerAction::Off, fast()).await.unwrap();
    assert!(out.verified);
    assert_eq!(*fake.sent.lock().unwrap(), vec![PowerRequest::ForceOff]);
}
