//! The outbox: a message is written to the journal with one delivery per sink before anyone
//! is told, then delivered by passes (the service runs one every few seconds, `oob report
//! deliver` one by hand): each due delivery is sent, marked delivered, or tried again after
//! a backoff that doubles, until it expires. A sink that is down loses nothing, a restart
//! resumes where the journal says, and a delivered message is never sent again.
//!
//! At most once per sink is what the journal can promise up to the instant the sink
//! answers: a crash between a sink's "accepted" and the journal's "delivered" sends it again
//! after the restart, with the same idempotency key (webhook) and Message-ID (mail) so that
//! the receiver can tell.

use tracing::{info, warn};

use super::message::Message;
use super::sink::Sinks;
use crate::config::ReportSettings;
use crate::remedy::journal::{Journal, JournalError, StoredMessage};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("outbox message {id}: {detail}")]
    Encode { id: String, detail: String },
}

/// Write `m` with a delivery for each of `sinks`, once (`false`: it was already written).
pub fn enqueue(
    journal: &Journal,
    sinks: &[&str],
    m: &Message,
    now_ms: u64,
) -> Result<bool, OutboxError> {
    let body = serde_json::to_string(m).map_err(|e| OutboxError::Encode {
        id: m.id.clone(),
        detail: e.to_string(),
    })?;
    Ok(journal.enqueue(
        &StoredMessage {
            id: m.id.clone(),
            node: m.node.clone(),
            kind: m.kind.name().to_owned(),
            created_ms: now_ms,
            body,
        },
        sinks,
    )?)
}

/// A stored message read back.
pub fn decode(stored: &StoredMessage) -> Result<Message, OutboxError> {
    serde_json::from_str(&stored.body).map_err(|e| OutboxError::Encode {
        id: stored.id.clone(),
        detail: e.to_string(),
    })
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Failed,
    Expired,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }
}

/// One attempt of a pass.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub message: String,
    pub sink: String,
    pub outcome: Outcome,
    pub error: Option<String>,
}

/// The wait before try `attempts + 1`: `retry_min_s` doubling up to `retry_max_s`.
pub fn backoff_ms(settings: &ReportSettings, attempts: u32) -> u64 {
    let min = settings.retry_min_s.saturating_mul(1000);
    let max = settings.retry_max_s.saturating_mul(1000);
    min.saturating_mul(1_u64 << attempts.min(30)).min(max)
}

/// How long an attempt holds its delivery: longer than a delivery may take.
const CLAIM_MS: u64 = 120_000;

/// Deliveries a pass takes at most (the rest wait for the next pass).
const PASS_LIMIT: usize = 64;

/// One pass over the due deliveries. A sink that fails is not tried again in the same
/// pass (its other messages wait for their next try with it). `now` is read per
/// delivery: a pass can take a while when a sink times out.
pub async fn deliver_due(
    journal: &Journal,
    sinks: &Sinks,
    settings: &ReportSettings,
    now: impl Fn() -> u64,
) -> Result<Vec<Attempt>, OutboxError> {
    let due = journal.due(now(), PASS_LIMIT)?;
    let mut down: Vec<(String, String)> = Vec::new();
    let mut attempts = Vec::with_capacity(due.len());
    for d in due {
        let id = d.message.id.clone();
        let at = now();
        // Taken for this attempt (a second process delivering from the same journal skips
        // it); the claim lapses by itself if this one dies mid-attempt.
        let claim_until = at.saturating_add(CLAIM_MS);
        if !journal.claim(&id, &d.sink, at, claim_until)? {
            continue;
        }
        let expire_at = d
            .message
            .created_ms
            .saturating_add(settings.expire_after_s.saturating_mul(1000));
        let result = if at >= expire_at {
            Err((
                Outcome::Expired,
                "not delivered before report.expire_after_s".to_owned(),
            ))
        } else if let Some((_, why)) = down.iter().find(|(s, _)| *s == d.sink) {
            Err((
                Outcome::Failed,
                format!("not tried: the sink failed in this pass ({why})"),
            ))
        } else {
            match decode(&d.message) {
                Err(e) => Err((Outcome::Expired, e.to_string())),
                Ok(m) => match sinks.deliver(&d.sink, &m).await {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        down.push((d.sink.clone(), e.to_string()));
                        Err((Outcome::Failed, e.to_string()))
                    }
                },
            }
        };
        let done = now();
        let attempt = match result {
            Ok(()) => {
                journal.delivered(&id, &d.sink, done)?;
                info!(message = %id, sink = %d.sink, "report delivered");
                Attempt {
                    message: id,
                    sink: d.sink,
                    outcome: Outcome::Delivered,
                    error: None,
                }
            }
            Err((Outcome::Expired, why)) => {
                journal.expire(&id, &d.sink, &why, done)?;
                warn!(message = %id, sink = %d.sink, error = %why, "report delivery given up");
                Attempt {
                    message: id,
                    sink: d.sink,
                    outcome: Outcome::Expired,
                    error: Some(why),
                }
            }
            Err((_, why)) => {
                let next = done.saturating_add(backoff_ms(settings, d.attempts));
                journal.retry(&id, &d.sink, &why, next)?;
                warn!(message = %id, sink = %d.sink, attempts = d.attempts + 1, error = %why, "report delivery failed; will retry");
                Attempt {
                    message: id,
                    sink: d.sink,
                    outcome: Outcome::Failed,
                    error: Some(why),
                }
            }
        };
        attempts.push(attempt);
    }
    Ok(attempts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::message::Kind;

    fn settings() -> ReportSettings {
        ReportSettings {
            retry_min_s: 10,
            retry_max_s: 60,
            expire_after_s: 3600,
            ..ReportSettings::default()
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let s = settings();
        let waits: Vec<u64> = (0..6).map(|a| backoff_ms(&s, a)).collect();
        assert_eq!(waits, [10_000, 20_000, 40_000, 60_000, 60_000, 60_000]);
        assert_eq!(backoff_ms(&s, u32::MAX), 60_000);
    }

    #[tokio::test]
    async fn a_failing_sink_is_retried_with_backoff_then_given_up_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let s = settings();
        // No sink is configured under this name: every try fails (like a sink that is down).
        let sinks = Sinks::new(&s, None);
        let m = Message::follow_up(
            Kind::StillDown,
            "n1/1/still-down-1",
            "n1",
            "t",
            "still down",
            &[],
            None,
        );
        let m2 = Message::follow_up(
            Kind::StillDown,
            "n1/1/still-down-2",
            "n1",
            "t",
            "still down",
            &[],
            None,
        );
        assert!(enqueue(&j, &["gone"], &m, 1_000).unwrap());
        assert!(enqueue(&j, &["gone"], &m2, 1_000).unwrap());
        assert!(!enqueue(&j, &["gone"], &m, 2_000).unwrap());
        let pass = deliver_due(&j, &sinks, &s, || 1_000).await.unwrap();
        assert_eq!(pass.len(), 2);
        assert!(pass.iter().all(|a| a.outcome == Outcome::Failed));
        assert!(pass[0].error.as_deref().unwrap().contains("no such sink"));
        // The second was not tried against a sink that just failed.
        assert!(pass[1].error.as_deref().unwrap().contains("not tried"));
        // Nothing due before the backoff…
        assert!(deliver_due(&j, &sinks, &s, || 10_999)
            .await
            .unwrap()
            .is_empty());
        // …then the second try, then a wait twice as long.
        assert_eq!(
            deliver_due(&j, &sinks, &s, || 11_000).await.unwrap().len(),
            2
        );
        assert!(deliver_due(&j, &sinks, &s, || 30_999)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(j.pending_deliveries().unwrap(), 2);
        // Past expire_after_s: given up, counted, still listed.
        let pass = deliver_due(&j, &sinks, &s, || 3_601_000).await.unwrap();
        assert!(
            pass.iter().all(|a| a.outcome == Outcome::Expired),
            "{pass:?}"
        );
        assert_eq!(j.pending_deliveries().unwrap(), 0);
        let rows = j.deliveries(None).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.state == "expired" && r.attempts == 2));
    }
}
