//! The BMC layer: one small trait, [`Bmc`], over Redfish and (later) IPMI, its plain data
//! types, endpoint addresses, vendor profiles, and the generic verified power executor.
//!
//! It answers "what is the machine's identity, power state and event log" and carries out
//! power requests. It decides nothing: which action to take, and when, belongs to `remedy/`.

pub mod connect;
mod endpoint;
mod error;
pub mod ipmi;
pub mod power;
pub mod profile;
pub mod redfish;
mod types;

pub use endpoint::{Endpoint, Protocol};
pub use error::BmcError;
pub use types::{
    Health, Identity, PowerAction, PowerRequest, PowerState, RequestAck, SelEntry, Severity,
};

use async_trait::async_trait;

/// What every BMC backend offers. Documented as a seam: the CLI and the executor hold a
/// `Box<dyn Bmc>`; tests substitute fakes.
///
/// Power requests here are single, unverified primitives; [`power::execute`] turns a user's
/// [`PowerAction`] into requests plus observed, verified state.
#[async_trait]
pub trait Bmc: Send + Sync {
    /// Identity of the managed system (UUID, serial, model, firmware).
    async fn identity(&self) -> Result<Identity, BmcError>;

    /// Current power state as the BMC reports it.
    async fn power_state(&self) -> Result<PowerState, BmcError>;

    /// Send one power request. Not verified: the caller polls [`Bmc::power_state`].
    async fn request_power(&self, request: PowerRequest) -> Result<RequestAck, BmcError>;

    /// Up to `max` entries of the system event log, oldest first.
    async fn sel(&self, max: usize) -> Result<Vec<SelEntry>, BmcError>;

    /// Clear the system event log.
    async fn clear_sel(&self) -> Result<(), BmcError>;

    /// Health rollup of the system and of the BMC itself.
    async fn health(&self) -> Result<Health, BmcError>;

    /// The locator (identify) LED: `Some(true)` lit or blinking, `None` when this BMC cannot
    /// say (IPMI without the chassis identify state).
    async fn locator(&self) -> Result<Option<bool>, BmcError> {
        Ok(None)
    }

    /// Turn the locator LED on (until turned off) or off. Not verified: read it back.
    async fn set_locator(&self, on: bool) -> Result<(), BmcError> {
        let _ = on;
        Err(BmcError::Unsupported {
            bmc: "this backend".into(),
            what: "a locator LED".into(),
        })
    }

    /// Release what the backend holds on the BMC (a Redfish session, an IPMI session).
    /// Best effort, never fails: a BMC that is gone has nothing to release.
    async fn close(&self);
}
