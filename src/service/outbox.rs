//! The service's side of the outbox: a delivery pass every few seconds (on every replica,
//! over its own journal), the pending gauge and the attempts by sink and outcome, and the
//! "still down" follow-ups for machines that wait for hands.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::warn;

use super::{metrics::DeliveryLabels, Service};
use crate::remedy::stage::Stage;
use crate::report::message::Kind;
use crate::report::outbox::deliver_due;
use crate::report::sink::Sinks;

/// How often the outbox is looked at.
pub const OUTBOX_TICK: Duration = Duration::from_secs(2);

/// `4 h`, `30 min`, `45 s`: a wait as a person says it.
pub fn spoken(secs: u64) -> String {
    if secs >= 3600 && secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

impl Service {
    /// Deliver until `stop` turns true.
    pub(super) async fn deliver_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let sinks = Sinks::new(&self.config.report, self.client.clone());
        let mut tick = tokio::time::interval(OUTBOX_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            // In cluster mode the messages are shared and the leader sends them (two replicas
            // delivering their copies would send twice).
            if self.exec.episodes().is_some()
                && !self.leading.load(std::sync::atomic::Ordering::Relaxed)
            {
                continue;
            }
            self.still_down().await;
            self.deliver_pass(&sinks).await;
        }
    }

    /// One pass: due deliveries sent, metrics updated.
    pub async fn deliver_pass(&self, sinks: &Sinks) {
        if !sinks.is_empty() {
            let exec = self.exec.clone();
            match deliver_due(self.exec.journal(), sinks, &self.config.report, move || {
                exec.now_ms()
            })
            .await
            {
                Ok(attempts) => {
                    for a in &attempts {
                        if a.outcome == crate::report::outbox::Outcome::Delivered {
                            self.share_delivered(&a.message, &a.sink).await;
                        }
                    }
                    for a in attempts {
                        self.metrics
                            .report_deliveries
                            .get_or_create(&DeliveryLabels {
                                sink: a.sink,
                                outcome: a.outcome.name().to_owned(),
                            })
                            .inc();
                    }
                }
                Err(e) => warn!(error = %e, "outbox pass failed"),
            }
        }
        if let Ok(n) = self.exec.journal().pending_deliveries() {
            self.metrics
                .reports_pending
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// "Still down after N hours" for every machine that waits for hands with an open
    /// report, once per `report.still_down_after_s` since the report.
    async fn still_down(&self) {
        let every = self.config.report.still_down_after_s;
        if every == 0 || self.exec.dry_run() {
            return;
        }
        let waiting: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, s)| matches!(s.position.stage, Stage::AwaitReplacement { .. }))
            .map(|(n, _)| n.clone())
            .collect();
        let now = self.exec.now_ms();
        for node in waiting {
            let Some((stored, _)) = self.exec.open_report(&node) else {
                continue;
            };
            let k = now.saturating_sub(stored.created_ms) / every.saturating_mul(1000).max(1);
            if k == 0 {
                continue;
            }
            self.exec
                .follow_up(
                    &node,
                    Kind::StillDown,
                    &format!("still-down-{k}"),
                    None,
                    &format!(
                        "{node} is still waiting for hands, {} after the fault report",
                        spoken(k.saturating_mul(every))
                    ),
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn waits_are_said_in_the_largest_whole_unit() {
        assert_eq!(super::spoken(4 * 3600), "4 h");
        assert_eq!(super::spoken(5400), "90 min");
        assert_eq!(super::spoken(61), "61 s");
    }
}
