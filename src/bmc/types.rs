//! Plain data exchanged over the [`super::Bmc`] trait. No I/O.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::Protocol;

/// Power state as observed. `PoweringOn`/`PoweringOff` are transitions some BMCs report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
    Unknown,
}

impl PowerState {
    /// Map a Redfish `PowerState` string. Anything unexpected is `Unknown`, never an error:
    /// a BMC's odd value must not stop a status read.
    pub fn from_redfish(value: &str) -> Self {
        match value {
            "On" => Self::On,
            "Off" => Self::Off,
            "PoweringOn" => Self::PoweringOn,
            "PoweringOff" => Self::PoweringOff,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::On => "On",
            Self::Off => "Off",
            Self::PoweringOn => "PoweringOn",
            Self::PoweringOff => "PoweringOff",
            Self::Unknown => "Unknown",
        };
        f.write_str(s)
    }
}

/// What a person or the ladder asks for. Each is verified by observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerAction {
    /// Power on; verified On.
    On,
    /// Hard power off; verified Off.
    Off,
    /// Graceful (ACPI) shutdown; verified Off.
    Soft,
    /// Verified Off, then verified On. Never a bare "cycle" request.
    Cycle,
    /// Hard reset (warm reboot without power loss); verified On afterwards.
    Reset,
}

impl PowerAction {
    /// Lowercase name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
            Self::Soft => "soft",
            Self::Cycle => "cycle",
            Self::Reset => "reset",
        }
    }
}

/// One primitive request a backend sends. Profiles map these to vendor names (Redfish
/// `ResetType`, IPMI chassis control codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PowerRequest {
    On,
    ForceOff,
    GracefulShutdown,
    ForceRestart,
    /// An ACPI restart request to the OS (Redfish `GracefulRestart`); IPMI has none. The
    /// ladder's soft reboot when SSH does not answer; an OS that is hung ignores it.
    GracefulRestart,
}

/// How a BMC answered a power request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestAck {
    /// Accepted (Redfish 200/202/204, IPMI completion code 0).
    Accepted,
    /// Refused because of the current state (Redfish 409). The executor re-reads the state:
    /// already in the target state is success, anything else is an error.
    Conflict,
}

/// Severity of a log entry or finding, as `ok|warning|critical` in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
}

impl Severity {
    /// Map a Redfish `Severity`/`Health` value (`OK`, `Warning`, `Critical`); unknown is `Ok`
    /// only when absent, otherwise `Warning` so that nothing odd is silently green.
    pub fn from_redfish(value: Option<&str>) -> Self {
        match value {
            None => Self::Ok,
            Some(v) if v.eq_ignore_ascii_case("ok") => Self::Ok,
            Some(v) if v.eq_ignore_ascii_case("critical") => Self::Critical,
            Some(_) => Self::Warning,
        }
    }
}

/// Who the BMC says the machine is. Strings are as reported (no normalisation); `None` when
/// the BMC does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub protocol: Protocol,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub uuid: Option<String>,
    pub bios_version: Option<String>,
    pub bmc_firmware: Option<String>,
}

/// One system event log entry, protocol-neutral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelEntry {
    pub id: String,
    /// RFC 3339 timestamp as reported, when there is one.
    pub created: Option<String>,
    pub severity: Severity,
    pub message: String,
    pub message_id: Option<String>,
    pub sensor_type: Option<String>,
}

/// Health rollup of the system and of its BMC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub system: Severity,
    pub bmc: Severity,
}
