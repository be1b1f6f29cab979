//! Redfish backend: discovery (service root → the one system → its manager), identity,
//! power through `ComputerSystem.Reset`, the SEL through LogServices, health.
//!
//! Vendors are never named in code: the [`Profile`] says which `ResetType`s and log paths to
//! use. Never picks "the first" of several systems: the address must name one.

mod client;
mod logs;
mod model;
pub mod tls;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::{debug, info, warn};

pub(crate) use client::chain;
use client::Client;
pub use client::{ClientOptions, Credentials};
use model::{ActionInfo, Collection, Manager, ResetAction, ServiceRoot, System};

use super::profile::{Profile, Profiles, Quirk, RedfishFacts};
use super::{
    Bmc, BmcError, Endpoint, Health, Identity, PowerRequest, PowerState, Protocol, RequestAck,
    SelEntry, Severity,
};

const ROOT: &str = "/redfish/v1";
const RESET: &str = "#ComputerSystem.Reset";
/// How long the system document read during discovery may stand in for a fresh read.
const DISCOVERY_FRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// A connected Redfish BMC, bound to one system.
pub struct RedfishBmc {
    client: Client,
    endpoint: Endpoint,
    profile: Profile,
    system_path: String,
    /// The system document read during discovery, handed to the first read (if it is still
    /// fresh) so that a one-shot command does not fetch it twice; later reads go to the BMC.
    discovered: std::sync::Mutex<Option<(std::time::Instant, System)>>,
    managers_path: String,
    manager: OnceCell<String>,
    reset: OnceCell<(String, Option<Vec<String>>)>,
}

impl RedfishBmc {
    /// Discover the service and bind to its system. `profile_id` forces a profile; otherwise
    /// it comes from the address scheme, then detection, then `generic-redfish`.
    pub async fn connect(
        endpoint: &Endpoint,
        creds: Credentials,
        options: ClientOptions,
        profiles: &Profiles,
        profile_id: Option<&str>,
    ) -> Result<Self, BmcError> {
        let client = Client::new(endpoint, creds, options)?;
        let forced = profile_id.or(endpoint.profile_hint);
        let forced = forced.map(|id| profiles.get(id)).transpose().map_err(|e| {
            BmcError::InvalidAddress {
                address: endpoint.to_string(),
                reason: e.to_string(),
            }
        })?;
        let root = Self::service_root(&client, endpoint, forced).await?;
        let mut profile = forced.or_else(|| {
            profiles.detect_redfish(&RedfishFacts {
                vendor: root.vendor.as_deref(),
                oem_keys: root.oem.keys().map(String::as_str).collect(),
                manufacturer: None,
            })
        });
        let sessions = root
            .links
            .sessions
            .as_ref()
            .map(|l| l.id.clone())
            .or_else(|| {
                root.session_service
                    .as_ref()
                    .map(|_| format!("{ROOT}/SessionService/Sessions"))
            });
        if let Some(path) = sessions.filter(|_| profile.is_none_or(|p| p.redfish.sessions)) {
            if !client.login(&path).await? {
                debug!(bmc = %endpoint.authority(), "session login unsupported, using basic auth");
            }
        }
        let systems = root
            .systems
            .map_or_else(|| format!("{ROOT}/Systems"), |l| l.id);
        let managers_path = root
            .managers
            .map_or_else(|| format!("{ROOT}/Managers"), |l| l.id);
        let (system_path, system) = match Self::find_system(&client, endpoint, &systems).await {
            Ok(found) => found,
            Err(e) => {
                client.logout().await;
                return Err(e);
            }
        };
        if profile.is_none() {
            profile = profiles.detect_redfish(&RedfishFacts {
                manufacturer: system.manufacturer.as_deref(),
                ..Default::default()
            });
        }
        let profile = match profile {
            Some(p) => p.clone(),
            None => profiles
                .generic(Protocol::Redfish)
                .map_err(|e| BmcError::Client {
                    bmc: endpoint.authority(),
                    reason: e.to_string(),
                })?
                .clone(),
        };
        info!(bmc = %endpoint.authority(), profile = %profile.id, system = %system_path, "redfish bmc connected");
        Ok(Self {
            client,
            endpoint: endpoint.clone(),
            profile,
            system_path,
            discovered: std::sync::Mutex::new(Some((std::time::Instant::now(), system))),
            managers_path,
            manager: OnceCell::new(),
            reset: OnceCell::new(),
        })
    }

    /// The profile in use.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The service root. A missing or `null` root is an error naming the fix, unless the
    /// profile has the `missing-service-root` quirk, which continues with defaults.
    async fn service_root(
        client: &Client,
        endpoint: &Endpoint,
        forced: Option<&Profile>,
    ) -> Result<ServiceRoot, BmcError> {
        let tolerate = forced.is_some_and(|p| p.has(Quirk::MissingServiceRoot));
        let result = match client.get::<Value>(ROOT).await {
            Ok(Value::Object(map)) => {
                serde_json::from_value(Value::Object(map)).map_err(|e| BmcError::Malformed {
                    url: format!("{}{ROOT}", endpoint.base_url()),
                    detail: e.to_string(),
                })
            }
            Ok(other) => Err(BmcError::Malformed {
                url: format!("{}{ROOT}", endpoint.base_url()),
                detail: format!(
                    "the service root is {} instead of a ServiceRoot object; for a Supermicro \
                     X10 BMC use --profile supermicro",
                    short_kind(&other)
                ),
            }),
            Err(BmcError::Http {
                status: 404, url, ..
            }) => Err(BmcError::Http {
                url,
                status: 404,
                body: "no Redfish service root; for a Supermicro X10 BMC use --profile supermicro"
                    .into(),
            }),
            Err(e) => Err(e),
        };
        match result {
            Err(e)
                if tolerate
                    && (matches!(e, BmcError::Malformed { .. })
                        || matches!(e, BmcError::Http { status: 404, .. })) =>
            {
                warn!(bmc = %endpoint.authority(), "no service root, continuing by the missing-service-root quirk");
                Ok(ServiceRoot::default())
            }
            other => other,
        }
    }

    /// The system named in the address, or the only one. Several and none named: refuse.
    async fn find_system(
        client: &Client,
        endpoint: &Endpoint,
        systems: &str,
    ) -> Result<(String, System), BmcError> {
        if let Some(path) = &endpoint.system_path {
            let system: System = client.get(path).await?;
            let canonical = system
                .odata_id
                .clone()
                .unwrap_or_else(|| path.clone())
                .trim_end_matches('/')
                .to_owned();
            return Ok((canonical, system));
        }
        let collection: Collection = client.get(systems).await?;
        let ids: Vec<&str> = collection
            .members
            .iter()
            .filter_map(model::member_id)
            .collect();
        match ids.as_slice() {
            [only] => {
                let path = only.trim_end_matches('/').to_owned();
                let system = client.get(&path).await?;
                Ok((path, system))
            }
            [] => Err(BmcError::Unsupported {
                bmc: endpoint.authority(),
                what: format!("{systems} lists no systems"),
            }),
            several => Err(BmcError::AmbiguousSystem {
                bmc: endpoint.authority(),
                systems: several.join(", "),
                example: format!("{}{}", endpoint_prefix(endpoint), several[0]),
            }),
        }
    }

    async fn system(&self) -> Result<System, BmcError> {
        let cached = self
            .discovered
            .lock()
            .map(|mut slot| slot.take())
            .unwrap_or_default();
        match cached {
            Some((at, system)) if at.elapsed() < DISCOVERY_FRESH => Ok(system),
            _ => self.client.get(&self.system_path).await,
        }
    }

    /// The system's manager: `Links.ManagedBy`, or the only Manager.
    async fn manager_path(&self) -> Result<String, BmcError> {
        self.manager
            .get_or_try_init(|| async {
                let system = self.system().await?;
                if let Some(link) = system.links.managed_by.first() {
                    return Ok(link.id.trim_end_matches('/').to_owned());
                }
                let managers: Collection = self.client.get(&self.managers_path).await?;
                match managers
                    .members
                    .iter()
                    .filter_map(model::member_id)
                    .collect::<Vec<_>>()[..]
                {
                    [only] => Ok(only.trim_end_matches('/').to_owned()),
                    _ => Err(BmcError::Unsupported {
                        bmc: self.endpoint.authority(),
                        what: "the system names no manager (Links.ManagedBy)".into(),
                    }),
                }
            })
            .await
            .cloned()
    }

    /// Reset target and allowed types (`None` when the BMC does not say).
    async fn reset_info(&self) -> Result<&(String, Option<Vec<String>>), BmcError> {
        self.reset
            .get_or_try_init(|| async {
                let system = self.system().await?;
                let action: ResetAction = system
                    .actions
                    .get(RESET)
                    .cloned()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .ok_or_else(|| BmcError::Unsupported {
                        bmc: self.endpoint.authority(),
                        what: format!("{} has no {RESET} action", self.system_path),
                    })?;
                let target = action.target.unwrap_or_else(|| {
                    format!("{}/Actions/ComputerSystem.Reset", self.system_path)
                });
                let allowed = match (action.allowable, action.action_info) {
                    (Some(values), _) => Some(values),
                    (None, Some(info)) => {
                        let info: ActionInfo = self.client.get(&info).await?;
                        info.parameters
                            .into_iter()
                            .find(|p| p.name.as_deref() == Some("ResetType"))
                            .and_then(|p| p.allowable)
                    }
                    (None, None) => None,
                };
                Ok((target, allowed))
            })
            .await
    }

    /// The `ResetType` to send for a request: the profile's first candidate the system allows.
    fn reset_type(
        &self,
        request: PowerRequest,
        allowed: Option<&[String]>,
    ) -> Result<String, BmcError> {
        let candidates = self
            .profile
            .redfish
            .reset_types
            .get(&request)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let pick = match allowed {
            None => candidates.first(),
            Some(allowed) => candidates.iter().find(|c| allowed.contains(c)),
        };
        pick.cloned().ok_or_else(|| BmcError::Unsupported {
            bmc: self.endpoint.authority(),
            what: format!(
                "{request:?}: none of [{}] is allowed (allowed: [{}])",
                candidates.join(", "),
                allowed.unwrap_or_default().join(", ")
            ),
        })
    }
}

fn short_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `redfish+http://host:port` for example addresses in error messages.
fn endpoint_prefix(endpoint: &Endpoint) -> String {
    let transport = if endpoint.tls { "" } else { "+http" };
    format!("redfish{transport}://{}", endpoint.authority())
}

#[async_trait]
impl Bmc for RedfishBmc {
    async fn identity(&self) -> Result<Identity, BmcError> {
        let system = self.system().await?;
        let bmc_firmware = match self.manager_path().await {
            Ok(path) => self.client.get::<Manager>(&path).await?.firmware_version,
            Err(e) => {
                debug!(error = %e, "no manager, bmc firmware unknown");
                None
            }
        };
        Ok(Identity {
            protocol: Protocol::Redfish,
            manufacturer: system.manufacturer,
            model: system.model,
            serial: system.serial_number,
            uuid: system.uuid,
            bios_version: system.bios_version,
            bmc_firmware,
        })
    }

    async fn power_state(&self) -> Result<PowerState, BmcError> {
        let system = self.system().await?;
        Ok(system
            .power_state
            .as_deref()
            .map_or(PowerState::Unknown, PowerState::from_redfish))
    }

    async fn request_power(&self, request: PowerRequest) -> Result<RequestAck, BmcError> {
        let (target, allowed) = self.reset_info().await?;
        let reset_type = self.reset_type(request, allowed.as_deref())?;
        info!(bmc = %self.endpoint.authority(), system = %self.system_path, reset_type = %reset_type, "sending reset");
        let reply = self
            .client
            .post(target, serde_json::json!({ "ResetType": reset_type }))
            .await?;
        if reply.status == reqwest::StatusCode::CONFLICT {
            return Ok(RequestAck::Conflict);
        }
        self.client.expect_success(target, reply)?;
        Ok(RequestAck::Accepted)
    }

    async fn sel(&self, max: usize) -> Result<Vec<SelEntry>, BmcError> {
        self.read_sel(max).await
    }

    async fn clear_sel(&self) -> Result<(), BmcError> {
        self.clear_log().await
    }

    async fn health(&self) -> Result<Health, BmcError> {
        let system = self.system().await?;
        let bmc = match self.manager_path().await {
            Ok(path) => self.client.get::<Manager>(&path).await?.status.health,
            Err(_) => None,
        };
        let rollup = system.status.health_rollup.or(system.status.health);
        Ok(Health {
            system: Severity::from_redfish(rollup.as_deref()),
            bmc: Severity::from_redfish(bmc.as_deref()),
        })
    }

    async fn locator(&self) -> Result<Option<bool>, BmcError> {
        let system: System = self.client.get(&self.system_path).await?;
        Ok(
            match (system.location_indicator_active, system.indicator_led) {
                (Some(on), _) => Some(on),
                (None, Some(led)) => Some(led != "Off"),
                (None, None) => None,
            },
        )
    }

    /// `LocationIndicatorActive` where the system has it, else the older `IndicatorLED`
    /// (`Blinking`: what a technician spots in a row of racks), with `If-Match` when the
    /// system carries an ETag.
    async fn set_locator(&self, on: bool) -> Result<(), BmcError> {
        let system: System = self.client.get(&self.system_path).await?;
        let body = if system.location_indicator_active.is_some() {
            serde_json::json!({ "LocationIndicatorActive": on })
        } else if system.indicator_led.is_some() {
            serde_json::json!({ "IndicatorLED": if on { "Blinking" } else { "Off" } })
        } else {
            return Err(BmcError::Unsupported {
                bmc: self.client.base().to_owned(),
                what: "a locator LED (the system has neither LocationIndicatorActive nor IndicatorLED)".into(),
            });
        };
        let reply = self
            .client
            .patch(&self.system_path, body, system.odata_etag.as_deref())
            .await?;
        self.client.expect_success(&self.system_path, reply)?;
        Ok(())
    }

    async fn close(&self) {
        self.client.logout().await;
    }
}
