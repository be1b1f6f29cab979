//! Building the resource map: from a recorded tree on disk, or synthetic systems.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde_json::{json, Value};

use super::Config;

pub const ROOT: &str = "/redfish/v1";

/// `/redfish/v1/Systems/1/` → `/redfish/v1/Systems/1`; the query is dropped.
pub fn normalize(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Load a DMTF-layout tree: "tall" (`DIR/redfish/v1/…/index.json`) or "short"
/// (`DIR/…/index.json` where DIR is `/redfish/v1`).
pub fn load(dir: &Path) -> anyhow::Result<BTreeMap<String, Value>> {
    let tall = dir.join("redfish/v1");
    let base = if tall.join("index.json").exists() || tall.is_dir() {
        tall
    } else {
        dir.to_path_buf()
    };
    let mut out = BTreeMap::new();
    walk(&base, &base, &mut out)?;
    anyhow::ensure!(!out.is_empty(), "no index.json under {}", dir.display());
    Ok(out)
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Value>) -> anyhow::Result<()> {
    let index = dir.join("index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("reading {}", index.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", index.display()))?;
        let rel = dir.strip_prefix(base).unwrap_or(Path::new(""));
        let rel = rel.to_string_lossy();
        let path = if rel.is_empty() {
            ROOT.to_owned()
        } else {
            format!("{ROOT}/{rel}")
        };
        out.insert(normalize(&path), value);
    }
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    children.sort();
    for child in children {
        walk(base, &child, out)?;
    }
    Ok(())
}

/// The systems of a resource map and their initial `PowerState`.
pub fn systems(resources: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    let Some(collection) = resources.get(&format!("{ROOT}/Systems")) else {
        return Vec::new();
    };
    let members = collection
        .get("Members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    members
        .iter()
        .filter_map(|m| m.get("@odata.id")?.as_str())
        .map(normalize)
        .map(|path| {
            let state = resources
                .get(&path)
                .and_then(|s| s.get("PowerState"))
                .and_then(Value::as_str)
                .unwrap_or("Off")
                .to_owned();
            (path, state)
        })
        .collect()
}

fn link(path: &str) -> Value {
    json!({ "@odata.id": path })
}

fn collection(path: &str, kind: &str, members: &[String]) -> Value {
    json!({
        "@odata.id": path,
        "@odata.type": format!("#{kind}Collection.{kind}Collection"),
        "Name": format!("{kind} Collection"),
        "Members@odata.count": members.len(),
        "Members": members.iter().map(|m| link(m)).collect::<Vec<_>>(),
    })
}

/// Deterministic UUID of synthetic system `i` (1-based).
pub fn synthetic_uuid(i: usize) -> String {
    format!("6f1c7a52-0b3e-4d8a-9c41-{i:012x}")
}

/// A synthetic service: `systems` ComputerSystems managed by one Manager, each with a SEL.
pub fn synthetic(config: &Config) -> BTreeMap<String, Value> {
    let mut r = BTreeMap::new();
    let mut root = json!({
        "@odata.id": ROOT,
        "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
        "Id": "RootService",
        "Name": "oob-mocks Redfish service",
        "RedfishVersion": "1.15.0",
        "Vendor": "oob-mocks",
        "Systems": link(&format!("{ROOT}/Systems")),
        "Managers": link(&format!("{ROOT}/Managers")),
        "Links": {},
    });
    if config.sessions {
        root["SessionService"] = link(&format!("{ROOT}/SessionService"));
        root["Links"]["Sessions"] = link(&format!("{ROOT}/SessionService/Sessions"));
        r.insert(
            format!("{ROOT}/SessionService"),
            json!({
                "@odata.id": format!("{ROOT}/SessionService"),
                "@odata.type": "#SessionService.v1_1_8.SessionService",
                "Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true,
                "SessionTimeout": 600,
                "Sessions": link(&format!("{ROOT}/SessionService/Sessions")),
            }),
        );
        r.insert(
            format!("{ROOT}/SessionService/Sessions"),
            collection(&format!("{ROOT}/SessionService/Sessions"), "Session", &[]),
        );
    }
    r.insert(ROOT.to_owned(), root);
    let manager = format!("{ROOT}/Managers/bmc");
    r.insert(
        format!("{ROOT}/Managers"),
        collection(
            &format!("{ROOT}/Managers"),
            "Manager",
            std::slice::from_ref(&manager),
        ),
    );
    r.insert(
        manager.clone(),
        json!({
            "@odata.id": manager, "@odata.type": "#Manager.v1_10_0.Manager",
            "Id": "bmc", "Name": "Mock BMC", "ManagerType": "BMC",
            "FirmwareVersion": concat!("oob-mocks ", env!("CARGO_PKG_VERSION")),
            "Status": { "State": "Enabled", "Health": "OK" },
        }),
    );
    let mut allowed = vec![
        "On",
        "ForceOff",
        "GracefulShutdown",
        "GracefulRestart",
        "ForceRestart",
    ];
    if config.allow_power_cycle {
        allowed.push("PowerCycle");
    }
    let systems: Vec<String> = (1..=config.systems)
        .map(|i| format!("{ROOT}/Systems/{i}"))
        .collect();
    r.insert(
        format!("{ROOT}/Systems"),
        collection(&format!("{ROOT}/Systems"), "ComputerSystem", &systems),
    );
    for (i, path) in systems.iter().enumerate() {
        let i = i + 1;
        r.insert(
            path.clone(),
            json!({
                "@odata.id": path, "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
                "Id": i.to_string(), "Name": format!("Mock system {i}"),
                "UUID": synthetic_uuid(i), "SerialNumber": format!("MOCK-{i:04}"),
                "Manufacturer": "oob-mocks", "Model": "Stateful Mock Server",
                "BiosVersion": format!("1.0.{i}"), "PowerState": "On",
                "Status": { "State": "Enabled", "Health": "OK", "HealthRollup": "OK" },
                "@odata.etag": "W/\"1\"",
                "Links": { "ManagedBy": [link(&manager)] },
                "LogServices": link(&format!("{path}/LogServices")),
                "Actions": { "#ComputerSystem.Reset": {
                    "target": format!("{path}/Actions/ComputerSystem.Reset"),
                    "ResetType@Redfish.AllowableValues": allowed,
                }},
            }),
        );
        if let Some(system) = r.get_mut(path).and_then(Value::as_object_mut) {
            if config.indicator_led {
                system.insert("IndicatorLED".into(), Value::String("Off".into()));
            } else {
                system.insert("LocationIndicatorActive".into(), Value::Bool(false));
            }
        }
        if !config.sel {
            if let Some(system) = r.get_mut(path).and_then(Value::as_object_mut) {
                system.remove("LogServices");
            }
            continue;
        }
        let logs = format!("{path}/LogServices");
        let sel = format!("{logs}/SEL");
        r.insert(
            logs.clone(),
            collection(&logs, "LogService", std::slice::from_ref(&sel)),
        );
        r.insert(
            sel.clone(),
            json!({
                "@odata.id": sel, "@odata.type": "#LogService.v1_3_0.LogService",
                "Id": "SEL", "Name": "System Event Log", "LogEntryType": "SEL",
                "Entries": link(&format!("{sel}/Entries")),
                "Actions": { "#LogService.ClearLog": {
                    "target": format!("{sel}/Actions/LogService.ClearLog") } },
            }),
        );
        r.insert(
            format!("{sel}/Entries"),
            sel_entries(&format!("{sel}/Entries")),
        );
    }
    r
}

fn sel_entries(path: &str) -> Value {
    let entry = |id: u32, severity: &str, sensor: &str, message: &str, code: &str| {
        json!({
            "@odata.id": format!("{path}/{id}"), "@odata.type": "#LogEntry.v1_15_0.LogEntry",
            "Id": id.to_string(), "Name": "Log Entry", "EntryType": "SEL",
            "Created": format!("2026-11-0{id}T10:00:00Z"), "Severity": severity,
            "SensorType": sensor, "Message": message, "MessageId": code,
        })
    };
    let members = vec![
        entry(
            1,
            "OK",
            "Power Supply",
            "Power supply PSU1 presence detected",
            "0x6F0800",
        ),
        entry(
            2,
            "Warning",
            "Temperature",
            "CPU1 temperature upper non-critical going high",
            "0x010701",
        ),
        entry(
            3,
            "Critical",
            "Memory",
            "Correctable ECC logging limit reached on DIMM A1",
            "0x6F0C05",
        ),
    ];
    json!({
        "@odata.id": path, "@odata.type": "#LogEntryCollection.LogEntryCollection",
        "Name": "System Event Log Entries", "Members@odata.count": members.len(), "Members": members,
    })
}
