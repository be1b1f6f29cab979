//! The executor's seams that are not Kubernetes ([`crate::k8s::NodeOps`] is that one): how a
//! BMC session is opened, and the clock the journal is stamped with.

use async_trait::async_trait;

use crate::bmc::connect::{self, Connected, Spec};
use crate::bmc::profile::Profiles;
use crate::bmc::BmcError;

/// Opens a session with a BMC.
#[async_trait]
pub trait BmcConnector: Send + Sync {
    async fn connect(&self, spec: Spec) -> Result<Connected, BmcError>;
}

/// The real connector: Redfish or IPMI by the address, vendor differences by profile.
pub struct Profiled(pub Profiles);

#[async_trait]
impl BmcConnector for Profiled {
    async fn connect(&self, spec: Spec) -> Result<Connected, BmcError> {
        connect::connect(spec, &self.0).await
    }
}

/// Wall-clock time in milliseconds since the Unix epoch (journal stamps, persisted stages).
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::clock::now_ms()
    }
}
