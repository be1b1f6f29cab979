//! Per-BMC governor: one mutating call in flight per BMC and a minimum interval between two
//! of them. BMCs are small embedded systems; two power requests racing on one, or a burst of
//! them, is how they wedge. Keyed by the BMC's address, so machines sharing a BMC (blades in
//! one chassis) share its limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use tokio::time::Instant;

#[derive(Default)]
pub struct Governor {
    min_interval: Duration,
    bmcs: Mutex<HashMap<String, Arc<AsyncMutex<Option<Instant>>>>>,
}

/// Held while a mutating call is in flight; dropping it stamps the end of the call.
pub struct Permit {
    guard: OwnedMutexGuard<Option<Instant>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        *self.guard = Some(Instant::now());
    }
}

impl Governor {
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            bmcs: Mutex::new(HashMap::new()),
        }
    }

    /// Wait for this BMC's turn (bounded by `limit`); `None` when the wait would exceed it.
    pub async fn acquire(&self, bmc: &str, limit: Duration) -> Option<Permit> {
        let slot = {
            let mut map = self.bmcs.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(bmc.to_owned()).or_default().clone()
        };
        let deadline = Instant::now() + limit;
        let guard = tokio::time::timeout_at(deadline, slot.lock_owned())
            .await
            .ok()?;
        if let Some(last) = *guard {
            let ready = last + self.min_interval;
            if ready > deadline {
                return None;
            }
            tokio::time::sleep_until(ready).await;
        }
        Some(Permit { guard })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_on_one_bmc_are_serialised_and_spaced() {
        let g = Arc::new(Governor::new(Duration::from_secs(2)));
        let start = Instant::now();
        let p = g.acquire("bmc-a", Duration::from_secs(60)).await.unwrap();
        // Another BMC is not held up.
        let other = g.acquire("bmc-b", Duration::from_secs(60)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        drop(other);
        let g2 = g.clone();
        let second = tokio::spawn(async move {
            let _p = g2.acquire("bmc-a", Duration::from_secs(60)).await.unwrap();
            Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(p); // first call ends at t=1 s
        let at = second.await.unwrap();
        assert_eq!(at.duration_since(start), Duration::from_secs(3));
        // A wait longer than the caller allows is refused, not queued forever.
        assert!(g
            .acquire("bmc-a", Duration::from_millis(500))
            .await
            .is_none());
    }
}
