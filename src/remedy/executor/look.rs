//! The executor's one read: a look at a BMC (power state, new SEL entries against the
//! baseline), for the gatherer.

use std::collections::BTreeSet;

use super::Executor;
use crate::bmc::{BmcError, PowerState};
use crate::config::Machine;
use crate::health::Finding;

/// What one look at a BMC saw.
#[derive(Debug, Clone, PartialEq)]
pub struct BmcLook {
    pub power: PowerState,
    /// New SEL findings since the baseline (none when the log was not read).
    pub findings: Vec<Finding>,
    pub sel: SelRead,
}

/// Whether the system event log could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelRead {
    Read,
    /// The BMC has no SEL it exposes (no LogService, command unsupported): judged on power
    /// alone, no hardware findings from this source.
    Absent(String),
    /// The read failed this time; the baseline is kept for the next look.
    Failed(String),
}

impl Executor {
    /// Out-of-band look: power state and new SEL findings (`seen` is the baseline of SEL ids
    /// already looked at; `None` on the first look, which only sets it). The BMC answered
    /// when its power state did: a BMC without a SEL (many expose none over Redfish) or
    /// whose log read fails is still a BMC that confirms power, and says so in `sel`.
    pub async fn confirm(
        &self,
        m: &Machine,
        seen: &mut Option<BTreeSet<String>>,
    ) -> Result<BmcLook, BmcError> {
        let c = self.connect(m).await?;
        let result = async {
            let power = c.bmc.power_state().await?;
            let read = tokio::time::timeout(
                crate::timeouts::SEL_READ,
                c.bmc.sel(crate::timeouts::SEL_MAX_ENTRIES),
            );
            let (findings, sel) = match read.await.unwrap_or_else(|_| {
                Err(BmcError::Timeout {
                    url: format!("{} (SEL read)", m.bmc),
                    after: crate::timeouts::SEL_READ,
                })
            }) {
                Ok(entries) => {
                    let findings = match seen {
                        Some(ids) => crate::health::sel::findings(&entries, ids),
                        None => Vec::new(),
                    };
                    *seen = Some(crate::health::sel::baseline(&entries));
                    (findings, SelRead::Read)
                }
                Err(e) if e.is_unsupported() => (Vec::new(), SelRead::Absent(e.to_string())),
                Err(e) => (Vec::new(), SelRead::Failed(e.to_string())),
            };
            Ok(BmcLook {
                power,
                findings,
                sel,
            })
        }
        .await;
        c.bmc.close().await;
        result
    }
}
