//! Connecting to a BMC from what the user gave (an endpoint, credentials, a TLS stance and
//! maybe a profile): picks the backend by the address's scheme and the vendor profile by
//! detection. Shared by the CLI and the service.

use std::time::Duration;

use super::ipmi::IpmiBmc;
use super::power::PowerTiming;
use super::profile::{Profile, Profiles};
use super::redfish::tls::TlsPolicy;
use super::redfish::{ClientOptions, Credentials, RedfishBmc};
use super::{Bmc, BmcError, Endpoint, Protocol};

/// What to connect to and how.
pub struct Spec {
    pub endpoint: Endpoint,
    pub creds: Credentials,
    pub tls: TlsPolicy,
    /// A profile id; `None`: from the address, then detection.
    pub profile: Option<String>,
    /// IPMI: one cipher suite instead of the profile's list.
    pub cipher_suite: Option<u8>,
    /// IPMI: `operator` or `administrator` instead of the profile's.
    pub privilege: Option<String>,
    /// How long a power action may take to be observed (default: the profile's).
    pub verify_timeout: Option<Duration>,
}

/// A connected BMC and its profile.
pub struct Connected {
    pub bmc: Box<dyn Bmc>,
    pub profile: Profile,
    pub timing: PowerTiming,
}

/// Connect (Redfish: discovery and login; IPMI: the RMCP+ session).
pub async fn connect(spec: Spec, profiles: &Profiles) -> Result<Connected, BmcError> {
    let options = ClientOptions {
        tls: spec.tls,
        ..ClientOptions::default()
    };
    let (bmc, profile): (Box<dyn Bmc>, Profile) = match spec.endpoint.protocol {
        Protocol::Redfish => {
            let bmc = RedfishBmc::connect(
                &spec.endpoint,
                spec.creds,
                options,
                profiles,
                spec.profile.as_deref(),
            )
            .await?;
            let profile = bmc.profile().clone();
            (Box::new(bmc), profile)
        }
        Protocol::Ipmi => {
            let unknown = |e: super::profile::ProfileError| BmcError::InvalidAddress {
                address: spec.endpoint.to_string(),
                reason: e.to_string(),
            };
            let mut profile = match spec.profile.as_deref() {
                Some(id) => profiles.get(id).map_err(unknown)?.clone(),
                None => profiles.generic(Protocol::Ipmi).map_err(unknown)?.clone(),
            };
            if let Some(suite) = spec.cipher_suite {
                profile.ipmi.cipher_suites = vec![suite];
            }
            if let Some(privilege) = &spec.privilege {
                profile.ipmi.privilege = privilege.to_ascii_lowercase();
            }
            let bmc = IpmiBmc::connect(
                &spec.endpoint,
                spec.creds.user,
                spec.creds.password,
                &profile,
            )
            .await?;
            // Without an explicit profile, the vendor's (by IANA manufacturer id) supplies
            // timings and is reported; the session settings already used stay generic.
            if spec.profile.is_none() {
                if let Some(vendor) = profiles.detect_ipmi(bmc.manufacturer_id().await?) {
                    let ipmi = profile.ipmi.clone();
                    profile = vendor.clone();
                    profile.ipmi = ipmi;
                }
            }
            (Box::new(bmc), profile)
        }
    };
    let mut timing = profile.power.timing();
    if let Some(t) = spec.verify_timeout {
        timing.timeout = t;
    }
    Ok(Connected {
        bmc,
        profile,
        timing,
    })
}
