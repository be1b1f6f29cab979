//! A stateful mock Redfish BMC. It serves either a recorded vendor tree (DMTF mockup layout,
//! as in `shared/peers/redfish-mockups`) or a synthetic service with several systems, and keeps
//! state on top: power states that change after a delay on Reset, sessions and Basic auth, a
//! clearable SEL, and fault injection (latency, 503 + Retry-After, expired sessions, 409,
//! stuck power, malformed JSON, dropped connections, HTTPS with a self-signed certificate).
//!
//! Faults are set through [`Mock::faults`] in-process or `POST /_mock/faults` over HTTP;
//! `GET /_mock/state` reports counters (resets per system, logins, logouts).

mod http;
mod tree;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::serve::{self, Running, SelfSigned};

/// How the mock is built.
#[derive(Debug, Clone)]
pub struct Config {
    /// Serve this recorded tree instead of synthetic systems.
    pub tree: Option<PathBuf>,
    /// Number of synthetic systems (ignored with a tree).
    pub systems: usize,
    /// Whether synthetic systems advertise `PowerCycle` in their AllowableValues.
    pub allow_power_cycle: bool,
    pub user: String,
    pub password: String,
    /// Offer `SessionService` (sessions); Basic auth works either way.
    pub sessions: bool,
    /// How long a Reset takes to show in `PowerState`.
    pub power_delay: Duration,
    /// HTTPS with a self-signed certificate.
    pub tls: bool,
    /// Serve collections in pages of this many members, linked by `Members@odata.nextLink`
    /// (`?$skip=N`), as large BMC logs are.
    pub page_size: Option<usize>,
    /// Synthetic systems have a SEL LogService. Without one, the BMC is like
    /// sushy-emulator and many real BMCs: no LogServices link at all.
    pub sel: bool,
    /// Synthetic systems have the older `IndicatorLED` (`Off`/`Lit`/`Blinking`) instead of
    /// `LocationIndicatorActive`, as BMCs before Redfish 2020.3 do.
    pub indicator_led: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tree: None,
            systems: 1,
            allow_power_cycle: false,
            user: "admin".into(),
            password: "password".into(),
            sessions: true,
            power_delay: Duration::from_millis(300),
            tls: false,
            page_size: None,
            sel: true,
            indicator_led: false,
        }
    }
}

/// Injected faults. Counters (`unavailable`, `malformed`, `drop`) apply to that many of the
/// following requests, then clear themselves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every response, in milliseconds.
    pub latency_ms: u64,
    /// The next N requests get 503 with `Retry-After: retry_after_s`.
    pub unavailable: u32,
    pub retry_after_s: u64,
    /// Reset answers 409 Conflict.
    pub conflict_on_reset: bool,
    /// Reset answers 204 but the power state never changes.
    pub stuck_power: bool,
    /// The next N GETs (except the service root) return truncated JSON.
    pub malformed: u32,
    /// The next N requests (except the service root) are processed, then the connection is
    /// dropped mid-response.
    pub drop: u32,
    /// The next N action POSTs (Reset, ClearLog) are carried out, then the connection is
    /// dropped before the answer: the client cannot know whether they happened.
    pub drop_actions: u32,
    /// `GracefulRestart` and `GracefulShutdown` are accepted (204) and ignored, as by an OS
    /// that is hung and does not act on ACPI requests.
    pub ignore_graceful: bool,
    /// Error answers quote the request's credentials back (its `X-Auth-Token`, its Basic
    /// user and password decoded), as a BMC with a debugging error page does.
    pub echo_credentials: bool,
}

/// Counters tests read to prove what reached the BMC.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// `(system path, ResetType)` in arrival order.
    pub resets: Vec<(String, String)>,
    pub logins: u32,
    pub logouts: u32,
    pub requests: u32,
    /// Requests refused with 401.
    pub unauthorized: u32,
    /// Every session token ever issued (tests check none leaks into output).
    pub issued_tokens: Vec<String>,
}

#[derive(Debug, Clone)]
struct Power {
    state: String,
    pending: Option<(String, Instant)>,
}

#[derive(Debug)]
struct State {
    resources: BTreeMap<String, Value>,
    power: BTreeMap<String, Power>,
    sessions: HashMap<String, String>,
    next_session: u64,
    faults: Faults,
    counters: Counters,
}

/// The shared mock state behind the HTTP handler.
#[derive(Debug, Clone)]
pub struct Mock {
    state: Arc<Mutex<State>>,
    config: Arc<Config>,
}

/// A mock serving on loopback. Dropping it stops the server.
pub struct RunningMock {
    pub mock: Mock,
    pub addr: SocketAddr,
    /// The certificate, when serving HTTPS.
    pub cert: Option<SelfSigned>,
    _server: Running,
}

impl RunningMock {
    /// `redfish+http://127.0.0.1:PORT` (or `redfish+https://…`).
    pub fn url(&self) -> String {
        let transport = if self.cert.is_some() { "https" } else { "http" };
        format!("redfish+{transport}://{}", self.addr)
    }
}

impl Mock {
    /// Build the state (reading the tree, if any) without serving it.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let resources = match &config.tree {
            Some(dir) => tree::load(dir)?,
            None => tree::synthetic(&config),
        };
        let power = tree::systems(&resources)
            .into_iter()
            .map(|(path, state)| {
                (
                    path,
                    Power {
                        state,
                        pending: None,
                    },
                )
            })
            .collect();
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                resources,
                power,
                sessions: HashMap::new(),
                next_session: 1,
                faults: Faults::default(),
                counters: Counters::default(),
            })),
            config: Arc::new(config),
        })
    }

    /// Serve on `addr` (port 0 for any free port; loopback only).
    pub async fn start(config: Config, addr: SocketAddr) -> anyhow::Result<RunningMock> {
        let cert = if config.tls {
            Some(SelfSigned::generate()?)
        } else {
            None
        };
        let mock = Self::new(config)?;
        let server = serve::serve(addr, http::router(mock.clone()), cert.as_ref()).await?;
        Ok(RunningMock {
            addr: server.addr,
            mock,
            cert,
            _server: server,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a handler panicked mid-update; the mock's state is still the
        // best description of the fake BMC, so keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Change the injected faults in place.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.lock().faults);
    }

    /// Forget every session, as a BMC does when sessions time out.
    pub fn expire_sessions(&self) {
        self.lock().sessions.clear();
    }

    /// Session tokens currently valid (tests check none leaks into output).
    pub fn session_tokens(&self) -> Vec<String> {
        self.lock().sessions.keys().cloned().collect()
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// Power state of a system path, after applying any due transition.
    pub fn power_state(&self, system: &str) -> Option<String> {
        let mut state = self.lock();
        let power = state.power.get_mut(system)?;
        settle(power);
        Some(power.state.clone())
    }

    /// A system's locator LED as its resource says (either property), `None` without one.
    pub fn locator(&self, system: &str) -> Option<bool> {
        let state = self.lock();
        let s = state.resources.get(system)?;
        s.get("LocationIndicatorActive")
            .and_then(Value::as_bool)
            .or_else(|| s.get("IndicatorLED")?.as_str().map(|v| v != "Off"))
    }

    /// Force a system's power state (scenario setup).
    pub fn set_power_state(&self, system: &str, value: &str) {
        if let Some(p) = self.lock().power.get_mut(system) {
            p.state = value.to_owned();
            p.pending = None;
        }
    }

    /// Give a system another identity (each BMC of a simulated fleet is a different machine).
    pub fn set_identity(&self, system: &str, uuid: &str, serial: &str) {
        if let Some(Value::Object(s)) = self.lock().resources.get_mut(system) {
            s.insert("UUID".into(), Value::String(uuid.to_owned()));
            s.insert("SerialNumber".into(), Value::String(serial.to_owned()));
        }
    }

    /// Append an entry to a system's SEL (`{system}/LogServices/SEL/Entries`), as the BMC does
    /// when a sensor asserts. Returns the entry's `Id`, or `None` without such a log.
    pub fn push_sel(
        &self,
        system: &str,
        severity: &str,
        sensor: &str,
        message: &str,
    ) -> Option<String> {
        let path = format!("{system}/LogServices/SEL/Entries");
        let mut state = self.lock();
        let Value::Object(collection) = state.resources.get_mut(&path)? else {
            return None;
        };
        let Value::Array(members) = collection
            .entry("Members")
            .or_insert_with(|| Value::Array(Vec::new()))
        else {
            return None;
        };
        let id = (members.len() + 100).to_string();
        members.push(serde_json::json!({
            "@odata.id": format!("{path}/{id}"), "@odata.type": "#LogEntry.v1_15_0.LogEntry",
            "Id": id, "Name": "Log Entry", "EntryType": "SEL", "Severity": severity,
            "SensorType": sensor, "Message": message,
        }));
        let count = members.len();
        collection.insert("Members@odata.count".into(), Value::from(count));
        Some(id)
    }

    /// The system paths, sorted.
    pub fn systems(&self) -> Vec<String> {
        self.lock().power.keys().cloned().collect()
    }
}

/// Apply a pending transition whose time has come.
fn settle(power: &mut Power) {
    if let Some((target, at)) = &power.pending {
        if Instant::now() >= *at {
            power.state = target.clone();
            power.pending = None;
        }
    }
}
