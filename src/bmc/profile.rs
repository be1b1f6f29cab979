//! Vendor profiles: what differs between BMC families, as data (`bmc-profiles/*.toml`).
//!
//! Values (reset-type names, log paths, timeouts, cipher suites) are plain fields; behaviour
//! that differs is a named [`Quirk`]. Profiles are embedded in the binary and may be
//! overridden, by id, from a directory. Selection: explicit id, else the address scheme,
//! else detection from what the BMC says about itself, else the protocol's generic profile.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::power::PowerTiming;
use super::{PowerRequest, Protocol};

/// The profiles shipped in the binary, as (file name, TOML text).
const EMBEDDED: &[(&str, &str)] = &[
    (
        "generic-redfish.toml",
        include_str!("../../bmc-profiles/generic-redfish.toml"),
    ),
    (
        "dell-idrac.toml",
        include_str!("../../bmc-profiles/dell-idrac.toml"),
    ),
    (
        "hpe-ilo.toml",
        include_str!("../../bmc-profiles/hpe-ilo.toml"),
    ),
    (
        "lenovo-xcc.toml",
        include_str!("../../bmc-profiles/lenovo-xcc.toml"),
    ),
    (
        "supermicro.toml",
        include_str!("../../bmc-profiles/supermicro.toml"),
    ),
    (
        "openbmc.toml",
        include_str!("../../bmc-profiles/openbmc.toml"),
    ),
    (
        "generic-ipmi.toml",
        include_str!("../../bmc-profiles/generic-ipmi.toml"),
    ),
];

/// Errors loading or checking profiles.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("profile {source_name}: {detail}")]
    Parse { source_name: String, detail: String },
    #[error("profile {source_name}: {detail}")]
    Invalid { source_name: String, detail: String },
    #[error("cannot read profiles from {path}: {detail}")]
    Io { path: String, detail: String },
    #[error("no profile named {id:?}; known: {known}")]
    Unknown { id: String, known: String },
}

/// One vendor family.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub id: String,
    pub name: String,
    pub protocol: Protocol,
    /// Free text for operators: firmware seen, caveats.
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub detect: Detect,
    #[serde(default)]
    pub power: PowerSettings,
    #[serde(default)]
    pub redfish: RedfishSettings,
    #[serde(default)]
    pub ipmi: IpmiSettings,
    #[serde(default)]
    pub quirks: Vec<Quirk>,
}

/// How a profile recognises its BMC. All matches are case-insensitive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    /// Redfish service root `Vendor`.
    #[serde(default)]
    pub vendor: Vec<String>,
    /// Prefixes of the ComputerSystem `Manufacturer`.
    #[serde(default)]
    pub manufacturer: Vec<String>,
    /// Keys under the service root's `Oem` object.
    #[serde(default)]
    pub oem_keys: Vec<String>,
    /// IPMI manufacturer IDs (IANA enterprise numbers) from Get Device ID.
    #[serde(default)]
    pub ipmi_manufacturer_ids: Vec<u32>,
}

/// Verification timing for power actions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerSettings {
    /// Seconds an action may take to be observed in its target state.
    #[serde(default = "default_power_timeout")]
    pub timeout_s: u64,
    /// Milliseconds between state polls.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_power_timeout() -> u64 {
    crate::timeouts::POWER_VERIFY.as_secs()
}

fn default_poll_ms() -> u64 {
    u64::try_from(crate::timeouts::POWER_POLL.as_millis()).unwrap_or(1000)
}

impl Default for PowerSettings {
    fn default() -> Self {
        Self {
            timeout_s: default_power_timeout(),
            poll_ms: default_poll_ms(),
        }
    }
}

impl PowerSettings {
    pub fn timing(&self) -> PowerTiming {
        PowerTiming {
            timeout: Duration::from_secs(self.timeout_s),
            poll: Duration::from_millis(self.poll_ms),
        }
    }
}

/// Redfish specifics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedfishSettings {
    /// `ResetType` candidates per request, in preference order; the first one the system
    /// allows is sent.
    #[serde(default = "default_reset_types")]
    pub reset_types: BTreeMap<PowerRequest, Vec<String>>,
    /// The SEL's LogService path; `{system}` and `{manager}` are replaced by those resources'
    /// paths. When absent the LogService is discovered by `sel_log_ids`.
    #[serde(default)]
    pub sel_log_service: Option<String>,
    /// LogService `Id`s that hold the system event log, in preference order (discovery).
    #[serde(default = "default_sel_ids")]
    pub sel_log_ids: Vec<String>,
    /// Log in with a session (`SessionService`) when the service offers one; else Basic.
    #[serde(default = "yes")]
    pub sessions: bool,
}

fn yes() -> bool {
    true
}

fn default_reset_types() -> BTreeMap<PowerRequest, Vec<String>> {
    let v = |names: &[&str]| names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    BTreeMap::from([
        (PowerRequest::On, v(&["On", "ForceOn"])),
        (PowerRequest::ForceOff, v(&["ForceOff"])),
        (PowerRequest::GracefulShutdown, v(&["GracefulShutdown"])),
        (PowerRequest::ForceRestart, v(&["ForceRestart"])),
        (PowerRequest::GracefulRestart, v(&["GracefulRestart"])),
    ])
}

fn default_sel_ids() -> Vec<String> {
    ["SEL", "Sel", "Log1", "EventLog", "Log"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

impl Default for RedfishSettings {
    fn default() -> Self {
        Self {
            reset_types: default_reset_types(),
            sel_log_service: None,
            sel_log_ids: default_sel_ids(),
            sessions: true,
        }
    }
}

/// IPMI specifics (used by the IPMI backend).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpmiSettings {
    /// RMCP+ cipher suites to try, in preference order.
    #[serde(default = "default_suites")]
    pub cipher_suites: Vec<u8>,
    /// Requested session privilege: `operator` or `administrator`.
    #[serde(default = "default_privilege")]
    pub privilege: String,
    /// Byte order of Get System GUID: `rfc4122`, `reversed` (the IPMI spec's), `smbios`.
    #[serde(default = "default_guid_order")]
    pub guid_order: GuidOrder,
}

/// How the 16 GUID bytes from Get System GUID map to the UUID string that SMBIOS, Redfish
/// and Kubernetes (`systemUUID`) show. The IPMI spec says "least significant byte first"
/// (the reverse of RFC 4122); many BMCs (and ipmi_sim) send RFC 4122 order; SMBIOS order
/// swaps only the first three fields. The profile picks one; the default is RFC 4122 order,
/// which is what ipmitool calls it when it detects a valid version nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GuidOrder {
    Rfc4122,
    Reversed,
    Smbios,
}

fn default_guid_order() -> GuidOrder {
    GuidOrder::Rfc4122
}

fn default_suites() -> Vec<u8> {
    vec![17, 3]
}

fn default_privilege() -> String {
    "operator".to_owned()
}

impl Default for IpmiSettings {
    fn default() -> Self {
        Self {
            cipher_suites: default_suites(),
            privilege: default_privilege(),
            guid_order: default_guid_order(),
        }
    }
}

/// Behaviour that differs by vendor, switched on by name from a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quirk {
    /// The service root `/redfish/v1` is missing or `null` while everything below it works.
    /// Seen on Supermicro X10 (SYS-F618H6-FTPTL+, BMC 3.x; recorded tree in the shared peers).
    /// With this quirk the client goes straight to `/redfish/v1/Systems` and uses Basic auth.
    MissingServiceRoot,
}

impl Profile {
    /// Parse one profile and check it; `source_name` is for messages.
    pub fn from_toml(source_name: &str, text: &str) -> Result<Self, ProfileError> {
        let profile: Self = toml::from_str(text).map_err(|e| ProfileError::Parse {
            source_name: source_name.to_owned(),
            detail: e.to_string(),
        })?;
        profile.check(source_name)?;
        Ok(profile)
    }

    fn check(&self, source_name: &str) -> Result<(), ProfileError> {
        let invalid = |detail: String| ProfileError::Invalid {
            source_name: source_name.to_owned(),
            detail,
        };
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(format!("id {:?} must be [A-Za-z0-9-]+", self.id)));
        }
        if self.power.poll_ms == 0 || self.power.timeout_s == 0 {
            return Err(invalid("power timeout_s and poll_ms must be > 0".into()));
        }
        if self.power.timeout_s > 3600 || self.power.poll_ms > 60_000 {
            return Err(invalid(
                "power timeout_s is at most 3600 and poll_ms at most 60000".into(),
            ));
        }
        if let Some(path) = &self.redfish.sel_log_service {
            if !path.starts_with("{system}") && !path.starts_with("{manager}") {
                return Err(invalid(format!(
                    "sel_log_service {path:?} must start with {{system}} or {{manager}}"
                )));
            }
        }
        for (request, names) in &self.redfish.reset_types {
            if names.is_empty() {
                return Err(invalid(format!("reset_types.{request:?} is empty")));
            }
        }
        if let Some(bad) = self
            .ipmi
            .cipher_suites
            .iter()
            .find(|s| ![3, 17].contains(*s))
        {
            return Err(invalid(format!("cipher suite {bad} unsupported (3 or 17)")));
        }
        if !["operator", "administrator"].contains(&self.ipmi.privilege.as_str()) {
            return Err(invalid(format!(
                "privilege {:?} must be operator or administrator",
                self.ipmi.privilege
            )));
        }
        Ok(())
    }

    pub fn has(&self, quirk: Quirk) -> bool {
        self.quirks.contains(&quirk)
    }
}

/// What a Redfish service says about itself, for detection.
#[derive(Debug, Default)]
pub struct RedfishFacts<'a> {
    pub vendor: Option<&'a str>,
    pub oem_keys: Vec<&'a str>,
    pub manufacturer: Option<&'a str>,
}

/// All known profiles, by id.
#[derive(Debug, Clone)]
pub struct Profiles {
    by_id: BTreeMap<String, Profile>,
}

impl Profiles {
    /// The embedded profiles. They are checked by a unit test, so a failure here is a build
    /// defect; it is still reported as an error, not a panic.
    pub fn embedded() -> Result<Self, ProfileError> {
        let mut by_id = BTreeMap::new();
        for (name, text) in EMBEDDED {
            let p = Profile::from_toml(name, text)?;
            by_id.insert(p.id.clone(), p);
        }
        Ok(Self { by_id })
    }

    /// The embedded profiles, with every `*.toml` in `dir` added or replacing by id.
    pub fn with_overrides(dir: &Path) -> Result<Self, ProfileError> {
        let mut profiles = Self::embedded()?;
        let io = |e: std::io::Error| ProfileError::Io {
            path: dir.display().to_string(),
            detail: e.to_string(),
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(io)?;
            let p = Profile::from_toml(&path.display().to_string(), &text)?;
            profiles.by_id.insert(p.id.clone(), p);
        }
        Ok(profiles)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.by_id.values()
    }

    pub fn get(&self, id: &str) -> Result<&Profile, ProfileError> {
        self.by_id.get(id).ok_or_else(|| ProfileError::Unknown {
            id: id.to_owned(),
            known: self.by_id.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The generic profile of a protocol.
    pub fn generic(&self, protocol: Protocol) -> Result<&Profile, ProfileError> {
        self.get(match protocol {
            Protocol::Redfish => "generic-redfish",
            Protocol::Ipmi => "generic-ipmi",
        })
    }

    /// The vendor profile whose IPMI manufacturer ids (Get Device ID) include `id`, if any.
    pub fn detect_ipmi(&self, id: u32) -> Option<&Profile> {
        self.iter()
            .find(|p| p.detect.ipmi_manufacturer_ids.contains(&id))
    }

    /// The profile whose detection rules match what a Redfish service says, if any.
    /// Vendor wins over OEM keys, which win over the system's manufacturer.
    pub fn detect_redfish(&self, facts: &RedfishFacts<'_>) -> Option<&Profile> {
        let redfish = || self.iter().filter(|p| p.protocol == Protocol::Redfish);
        let eq = |list: &[String], v: &str| list.iter().any(|x| x.eq_ignore_ascii_case(v));
        if let Some(vendor) = facts.vendor {
            if let Some(p) = redfish().find(|p| eq(&p.detect.vendor, vendor)) {
                return Some(p);
            }
        }
        for key in &facts.oem_keys {
            if let Some(p) = redfish().find(|p| eq(&p.detect.oem_keys, key)) {
                return Some(p);
            }
        }
        let manufacturer = facts.manufacturer?.to_ascii_lowercase();
        redfish().find(|p| {
            p.detect
                .manufacturer
                .iter()
                .any(|m| manufacturer.starts_with(&m.to_ascii_lowercase()))
        })
    }
}

#[cfg(test)]
mod tests;
