//! IPMI v2.0 over LAN (RMCP+): an async client written for `oob` (suites 3 and 17, privilege
//! raised after activation, retransmission, replay window, sessions always closed), and the
//! [`Bmc`] implementation on top of it: identity (Get Device ID, Get System GUID), chassis
//! power, SEL.
//!
//! One session per BMC, shared by concurrent callers through a mutex (one request in flight
//! per BMC, which is also what fragile BMCs want). A session the BMC dropped is re-opened once.

pub mod crypto;
pub mod packet;
pub mod sel;
mod session;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tracing::{debug, warn};

pub use crypto::Suite;
use packet::Response;
use session::{check, Session};
pub use session::{Privilege, SessionConfig};

use super::profile::Profile;
use super::{
    Bmc, BmcError, Endpoint, Health, Identity, PowerRequest, PowerState, Protocol, RequestAck,
    SelEntry, Severity,
};
use crate::secret::Secret;

const APP: u8 = 0x06;
const CHASSIS: u8 = 0x00;
const STORAGE: u8 = 0x0A;

/// Default per-attempt reply wait and attempts (ipmitool uses 1 s and 4 tries by default).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
pub const ATTEMPTS: u32 = 4;

pub use super::profile::GuidOrder;

/// Format GUID bytes as a lowercase UUID string.
pub fn format_guid(bytes: &[u8; 16], order: GuidOrder) -> String {
    let mut b = *bytes;
    match order {
        GuidOrder::Rfc4122 => {}
        GuidOrder::Reversed => b.reverse(),
        GuidOrder::Smbios => {
            b[0..4].reverse();
            b[4..6].reverse();
            b[6..8].reverse();
        }
    }
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Vendor name of an IANA enterprise number (Get Device ID), for the ones seen in fleets.
pub fn manufacturer_name(id: u32) -> Option<&'static str> {
    Some(match id {
        2 => "IBM",
        11 => "HPE",
        343 => "Intel",
        674 => "Dell",
        4753 => "MontaVista",
        7154 => "Quanta",
        10876 => "Supermicro",
        19046 => "Lenovo",
        20974 => "American Megatrends",
        49622 => "OpenBMC",
        _ => return None,
    })
}

/// A BMC over IPMI.
pub struct IpmiBmc {
    config: SessionConfig,
    url: String,
    guid_order: GuidOrder,
    session: Mutex<Option<Session>>,
    /// Get Device ID's reply; fixed for the BMC's lifetime, so asked once (profile
    /// detection and identity both need it).
    device_id: tokio::sync::OnceCell<Vec<u8>>,
}

impl IpmiBmc {
    /// Resolve the address and open a session.
    pub async fn connect(
        endpoint: &Endpoint,
        user: String,
        password: Secret,
        profile: &Profile,
    ) -> Result<Self, BmcError> {
        let url = format!("ipmi://{}", endpoint.authority());
        let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
        let addr: SocketAddr = (host, endpoint.port)
            .to_socket_addrs()
            .map_err(|e| BmcError::Transport {
                url: url.clone(),
                detail: e.to_string(),
            })?
            .next()
            .ok_or_else(|| BmcError::Transport {
                url: url.clone(),
                detail: "no address".into(),
            })?;
        let privilege = match profile.ipmi.privilege.as_str() {
            "administrator" => Privilege::Administrator,
            _ => Privilege::Operator,
        };
        let config = SessionConfig {
            addr,
            user,
            password,
            suites: profile.ipmi.cipher_suites.clone(),
            privilege,
            attempt_timeout: ATTEMPT_TIMEOUT,
            attempts: ATTEMPTS,
        };
        Self::with_config(config, profile.ipmi.guid_order).await
    }

    /// Open a session with explicit transport settings (timeouts, attempts, suites).
    pub async fn with_config(
        config: SessionConfig,
        guid_order: GuidOrder,
    ) -> Result<Self, BmcError> {
        let url = format!("ipmi://{}", config.addr);
        let session = Session::open(&config).await?;
        Ok(Self {
            config,
            url,
            guid_order,
            session: Mutex::new(Some(session)),
            device_id: tokio::sync::OnceCell::new(),
        })
    }

    /// One request; on silence, the session is re-opened once and (for idempotent commands)
    /// the request sent again.
    async fn call(
        &self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        idempotent: bool,
    ) -> Result<Response, BmcError> {
        let mut guard = self.session.lock().await;
        if guard.is_none() {
            *guard = Some(Session::open(&self.config).await?);
        }
        let Some(session) = guard.as_mut() else {
            return Err(BmcError::Transport {
                url: self.url.clone(),
                detail: "no session".into(),
            });
        };
        match session.call(netfn, cmd, data, idempotent).await {
            Err(e @ BmcError::Timeout { .. }) if idempotent => {
                warn!(bmc = %self.url, error = %e, "no reply in the session, re-opening it");
                if let Some(old) = guard.take() {
                    old.close().await;
                }
                let mut fresh = Session::open(&self.config).await?;
                let r = fresh.call(netfn, cmd, data, true).await;
                *guard = Some(fresh);
                r
            }
            other => other,
        }
    }

    async fn checked(
        &self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        name: &str,
    ) -> Result<Vec<u8>, BmcError> {
        let r = self.call(netfn, cmd, data, true).await?;
        check(&self.url, name, &r)?;
        Ok(r.data)
    }

    fn short(&self, what: &str) -> BmcError {
        BmcError::Malformed {
            url: self.url.clone(),
            detail: format!("short {what} reply"),
        }
    }

    /// Get Device ID, at least 11 bytes (asked once).
    async fn device_id(&self) -> Result<&[u8], BmcError> {
        let dev = self
            .device_id
            .get_or_try_init(|| self.checked(APP, 0x01, &[], "Get Device ID"))
            .await?;
        if dev.len() < 11 {
            return Err(self.short("Get Device ID"));
        }
        Ok(dev)
    }

    /// The IANA manufacturer id from Get Device ID (vendor profile detection).
    pub async fn manufacturer_id(&self) -> Result<u32, BmcError> {
        let dev = self.device_id().await?;
        let b = &dev[6..9];
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    /// Chassis Identify: blink the locator LED for `seconds` (0 turns it off).
    pub async fn identify(&self, seconds: u8) -> Result<(), BmcError> {
        self.checked(CHASSIS, 0x04, &[seconds], "Chassis Identify")
            .await
            .map(|_| ())
    }

    async fn reserve_sel(&self) -> Result<[u8; 2], BmcError> {
        let d = self.checked(STORAGE, 0x42, &[], "Reserve SEL").await?;
        d.get(..2)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| self.short("Reserve SEL"))
    }
}

#[async_trait]
impl Bmc for IpmiBmc {
    async fn identity(&self) -> Result<Identity, BmcError> {
        let dev = self.device_id().await?;
        let manufacturer = u32::from_le_bytes([dev[6], dev[7], dev[8], 0]);
        let product = u16::from_le_bytes([dev[9], dev[10]]);
        let firmware = format!("{}.{:02x}", dev[2] & 0x7F, dev[3]);
        let guid = match self.checked(APP, 0x37, &[], "Get System GUID").await {
            Ok(g) => g
                .get(..16)
                .and_then(|s| <[u8; 16]>::try_from(s).ok())
                .map(|g| format_guid(&g, self.guid_order)),
            Err(e) => {
                debug!(bmc = %self.url, error = %e, "no system guid");
                None
            }
        };
        Ok(Identity {
            protocol: Protocol::Ipmi,
            manufacturer: Some(
                manufacturer_name(manufacturer)
                    .map_or_else(|| format!("IANA {manufacturer}"), str::to_owned),
            ),
            model: Some(format!("product {product:#06x}")),
            serial: None,
            uuid: guid,
            bios_version: None,
            bmc_firmware: Some(firmware),
        })
    }

    async fn power_state(&self) -> Result<PowerState, BmcError> {
        let d = self
            .checked(CHASSIS, 0x01, &[], "Get Chassis Status")
            .await?;
        let byte = d.first().ok_or_else(|| self.short("Get Chassis Status"))?;
        Ok(if byte & 0x01 != 0 {
            PowerState::On
        } else {
            PowerState::Off
        })
    }

    async fn request_power(&self, request: PowerRequest) -> Result<RequestAck, BmcError> {
        // A hard reset must never run twice: it is sent once, and a lost reply is resolved by
        // the executor polling the state. Power up/down/soft are idempotent and retransmitted.
        let (code, idempotent) = match request {
            PowerRequest::ForceOff => (0x00, true),
            PowerRequest::On => (0x01, true),
            PowerRequest::ForceRestart => (0x03, false),
            PowerRequest::GracefulShutdown => (0x05, true),
            // Chassis Control has no OS restart request (IPMI v2.0 §28.3).
            PowerRequest::GracefulRestart => {
                return Err(BmcError::Unsupported {
                    bmc: self.url.clone(),
                    what: "a graceful restart (IPMI has none; use soft off, then on)".into(),
                })
            }
        };
        let r = self.call(CHASSIS, 0x02, &[code], idempotent).await?;
        check(&self.url, "Chassis Control", &r)?;
        Ok(RequestAck::Accepted)
    }

    async fn sel(&self, max: usize) -> Result<Vec<SelEntry>, BmcError> {
        // Get SEL Info first: an empty SEL answers Get SEL Entry with 0xCB, not a record.
        let info = self.checked(STORAGE, 0x40, &[], "Get SEL Info").await?;
        let count = info
            .get(1..3)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or_else(|| self.short("Get SEL Info"))?;
        if count == 0 {
            return Ok(Vec::new());
        }
        let reservation = self.reserve_sel().await?;
        let mut out = Vec::new();
        let mut next: u16 = 0;
        while next != 0xFFFF && out.len() < max {
            let id = next.to_le_bytes();
            let d = self
                .checked(
                    STORAGE,
                    0x43,
                    &[reservation[0], reservation[1], id[0], id[1], 0, 0xFF],
                    "Get SEL Entry",
                )
                .await?;
            if d.len() < 18 {
                return Err(self.short("Get SEL Entry"));
            }
            let following = u16::from_le_bytes([d[0], d[1]]);
            let record = sel::decode(&d[2..]).ok_or_else(|| self.short("SEL record"))?;
            out.push(record.to_entry());
            if following == next {
                break; // a BMC pointing at itself would loop forever
            }
            next = following;
        }
        Ok(out)
    }

    async fn clear_sel(&self) -> Result<(), BmcError> {
        let r = self.reserve_sel().await?;
        self.checked(
            STORAGE,
            0x47,
            &[r[0], r[1], b'C', b'L', b'R', 0xAA],
            "Clear SEL",
        )
        .await?;
        for _ in 0..20 {
            let d = self
                .checked(
                    STORAGE,
                    0x47,
                    &[r[0], r[1], b'C', b'L', b'R', 0x00],
                    "Clear SEL status",
                )
                .await?;
            if d.first().is_some_and(|b| b & 0x0F == 1) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(BmcError::Timeout {
            url: self.url.clone(),
            after: Duration::from_secs(5),
        })
    }

    async fn health(&self) -> Result<Health, BmcError> {
        let chassis = self
            .checked(CHASSIS, 0x01, &[], "Get Chassis Status")
            .await?;
        let faults = chassis.first().is_some_and(|b| b & 0x1C != 0); // overload, interlock, fault
        let bmc = match self.call(APP, 0x04, &[], true).await {
            Ok(r) if r.completion == 0 => match r.data.first() {
                Some(0x55 | 0x56) => Severity::Ok,
                Some(0x58) => Severity::Critical,
                _ => Severity::Warning,
            },
            _ => Severity::Warning,
        };
        Ok(Health {
            system: if faults {
                Severity::Critical
            } else {
                Severity::Ok
            },
            bmc,
        })
    }

    /// Get Chassis Status, byte 4 (Misc. Chassis State): bit 6 says whether the identify
    /// state is reported, bits 5:4 give it (0 off, 1 temporary on, 2 indefinite on).
    async fn locator(&self) -> Result<Option<bool>, BmcError> {
        let d = self
            .checked(CHASSIS, 0x01, &[], "Get Chassis Status")
            .await?;
        Ok(d.get(3)
            .filter(|misc| *misc & 0x40 != 0)
            .map(|misc| (misc >> 4) & 0x03 != 0))
    }

    /// Chassis Identify with Force Identify On (IPMI v2.0 §28.5), or an interval of 0 (off).
    async fn set_locator(&self, on: bool) -> Result<(), BmcError> {
        let data: &[u8] = if on { &[0x00, 0x01] } else { &[0x00, 0x00] };
        let r = self.call(CHASSIS, 0x04, data, true).await?;
        check(&self.url, "Chassis Identify", &r)
    }

    async fn close(&self) {
        if let Some(session) = self.session.lock().await.take() {
            session.close().await;
        }
    }
}

impl Drop for IpmiBmc {
    /// A session not closed explicitly (cancelled command) is closed in the background, so
    /// that the BMC's session table never fills up.
    fn drop(&mut self) {
        let Some(session) = self.session.get_mut().take() else {
            return;
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(session.close());
        }
    }
}

#[cfg(test)]
mod tests;
