//! The few Redfish resources `oob` reads, decoded leniently: every field optional, unknown
//! fields ignored. A BMC that omits something gets `None`, not an error.

use serde::Deserialize;
use serde_json::Value;

/// `{"@odata.id": "…"}`
#[derive(Debug, Clone, Deserialize)]
pub struct Link {
    #[serde(rename = "@odata.id")]
    pub id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceRoot {
    pub vendor: Option<String>,
    pub systems: Option<Link>,
    pub managers: Option<Link>,
    pub session_service: Option<Link>,
    #[serde(default)]
    pub links: RootLinks,
    #[serde(default)]
    pub oem: serde_json::Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootLinks {
    pub sessions: Option<Link>,
}

/// A collection. `Members` may be links only or expanded resources, so kept as values.
#[derive(Debug, Default, Deserialize)]
pub struct Collection {
    #[serde(rename = "Members", default)]
    pub members: Vec<Value>,
    #[serde(rename = "Members@odata.nextLink")]
    pub next_link: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    pub health: Option<String>,
    pub health_rollup: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct System {
    #[serde(rename = "@odata.id")]
    pub odata_id: Option<String>,
    #[serde(rename = "UUID")]
    pub uuid: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub bios_version: Option<String>,
    pub power_state: Option<String>,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub links: SystemLinks,
    #[serde(default)]
    pub actions: serde_json::Map<String, Value>,
    pub log_services: Option<Link>,
    /// The locator LED (Redfish 2020.3 on): `true` while lit or blinking.
    pub location_indicator_active: Option<bool>,
    /// The older locator LED: `Lit`, `Blinking` or `Off`.
    #[serde(rename = "IndicatorLED")]
    pub indicator_led: Option<String>,
    /// The resource's ETag, for a conditional PATCH.
    #[serde(rename = "@odata.etag")]
    pub odata_etag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemLinks {
    #[serde(default)]
    pub managed_by: Vec<Link>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Manager {
    pub firmware_version: Option<String>,
    #[serde(default)]
    pub status: Status,
    pub log_services: Option<Link>,
}

/// `#ComputerSystem.Reset` as found under a system's `Actions`.
#[derive(Debug, Deserialize)]
pub struct ResetAction {
    pub target: Option<String>,
    #[serde(rename = "ResetType@Redfish.AllowableValues")]
    pub allowable: Option<Vec<String>>,
    #[serde(rename = "@Redfish.ActionInfo")]
    pub action_info: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ActionInfo {
    #[serde(rename = "Parameters", default)]
    pub parameters: Vec<ActionParameter>,
}

#[derive(Debug, Deserialize)]
pub struct ActionParameter {
    #[serde(rename = "Name")]
    pub name: Option<String>,
    #[serde(rename = "AllowableValues")]
    pub allowable: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogService {
    pub entries: Option<Link>,
    #[serde(default)]
    pub actions: serde_json::Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogEntry {
    pub id: Option<String>,
    pub created: Option<String>,
    pub severity: Option<String>,
    pub message: Option<String>,
    pub message_id: Option<String>,
    pub sensor_type: Option<String>,
}

/// The `target` of an action named `name` (e.g. `#LogService.ClearLog`).
pub fn action_target(actions: &serde_json::Map<String, Value>, name: &str) -> Option<String> {
    actions
        .get(name)?
        .get("target")?
        .as_str()
        .map(str::to_owned)
}

/// The `@odata.id` of a collection member (link or expanded).
pub fn member_id(member: &Value) -> Option<&str> {
    member.get("@odata.id")?.as_str()
}
