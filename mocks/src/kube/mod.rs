//! A fake kube-apiserver, faithful enough to test the real `kube` client against: discovery,
//! nodes (get, list, patch merge/strategic/JSON, status subresource, delete),
//! events.k8s.io/v1 events, leases, secrets and evictions, with resourceVersions, optimistic
//! concurrency (409), throttling (429) and real `Status` error bodies. What `oob` writes is
//! validated as strictly as a real API server does it (422 with field causes, 415 for an
//! unknown patch type; see [`validate`]), so that a test cannot pass on the fake's leniency.
//! Every request is recorded so that tests can check its shape (verb, path, content type,
//! body).
//!
//! Seeded from a fixture: `{"nodes": [Node, …]}`.

mod custom;
mod patch;
pub mod validate;
mod writes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Value};

use crate::serve::{self, Running};

/// One request as the server saw it.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// The query string (`watch=true&resourceVersion=…`), when there was one.
    pub query: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<String, Value>,
    /// (namespace, name) → Pod.
    pods: BTreeMap<(String, String), Value>,
    pdbs: Vec<Value>,
    /// (namespace, name) → Secret / ConfigMap.
    secrets: BTreeMap<(String, String), Value>,
    configmaps: BTreeMap<(String, String), Value>,
    leases: BTreeMap<(String, String), Value>,
    events: Vec<Value>,
    resource_version: u64,
    next_uid: u64,
    requests: Vec<Recorded>,
    /// The next N requests get 429 Too Many Requests.
    throttle: u32,
    /// Node watch events (`{"type","object"}`) to every open watch.
    node_watch: Option<tokio::sync::broadcast::Sender<Value>>,
    /// The namespaces that exist, when the fixture lists them (`"namespaces": [...]`): a
    /// lease created in another is refused with 404 as the real server does. Without the
    /// list every namespace exists.
    namespaces: Option<Vec<String>>,
    /// oob's custom resources: (plural, namespace, name) → object.
    custom: BTreeMap<(String, String, String), Value>,
    /// Whether oob's CRDs are installed (the default; a fixture may say `"crds": false`).
    crds: bool,
}

/// Tell open node watches about a change.
fn notify(s: &State, kind: &str, node: &Value) {
    if let Some(tx) = &s.node_watch {
        let _ = tx.send(json!({ "type": kind, "object": node }));
    }
}

/// Handle on a running fake API server.
#[derive(Debug, Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

pub struct RunningApi {
    pub api: FakeApi,
    pub addr: SocketAddr,
    _server: Running,
}

impl RunningApi {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A Kubernetes `Status` failure (what kube-rs parses into `Error::Api`).
pub fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

fn ok(value: &Value) -> Response {
    (StatusCode::OK, axum::Json(value.clone())).into_response()
}

impl FakeApi {
    /// Seed from a fixture document `{"nodes": [...]}`.
    pub fn new(fixture: &Value) -> Self {
        let api = Self {
            state: Arc::new(Mutex::new(State::default())),
        };
        api.lock().node_watch = Some(tokio::sync::broadcast::channel(1024).0);
        api.lock().crds = fixture.get("crds").and_then(Value::as_bool) != Some(false);
        {
            let mut s = api.lock();
            for p in fixture
                .get("pods")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let mut p = p.clone();
                stamp(&mut s, &mut p, true);
                let ns = p
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned();
                let name = p
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                s.pods.insert((ns, name), p);
            }
            s.namespaces = fixture
                .get("namespaces")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                });
            s.pdbs = fixture
                .get("pdbs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
        }
        if let Some(nodes) = fixture.get("nodes").and_then(Value::as_array) {
            let mut s = api.lock();
            for n in nodes {
                let mut n = n.clone();
                stamp(&mut s, &mut n, true);
                if let Some(name) = n.pointer("/metadata/name").and_then(Value::as_str) {
                    s.nodes.insert(name.to_owned(), n);
                }
            }
        }
        api
    }

    pub async fn start(fixture: &Value, addr: SocketAddr) -> anyhow::Result<RunningApi> {
        let api = Self::new(fixture);
        let router = Router::new().fallback(handle).with_state(api.clone());
        let server = serve::serve(addr, router, None).await?;
        Ok(RunningApi {
            api,
            addr: server.addr,
            _server: server,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn node(&self, name: &str) -> Option<Value> {
        self.lock().nodes.get(name).cloned()
    }

    /// Put a ConfigMap (e.g. `kube-public/cluster-info`).
    pub fn put_configmap(&self, ns: &str, name: &str, data: Value) {
        let mut s = self.lock();
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": ns, "name": name}, "data": data});
        stamp(&mut s, &mut cm, true);
        s.configmaps.insert((ns.to_owned(), name.to_owned()), cm);
    }

    /// An OobRemediation (or template) as stored.
    pub fn custom(&self, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .custom
            .get(&(plural.to_owned(), ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every stored object of `plural` in `ns`.
    pub fn customs(&self, plural: &str, ns: &str) -> Vec<Value> {
        self.lock()
            .custom
            .iter()
            .filter(|((p, n, _), _)| p == plural && n == ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Put an object as another client (Node Healthcheck) would create it (stamped, status
    /// kept as given: a test may seed one mid-episode).
    pub fn put_custom(&self, plural: &str, ns: &str, obj: Value) {
        let mut s = self.lock();
        let mut obj = obj;
        obj["metadata"]["namespace"] = json!(ns);
        stamp(&mut s, &mut obj, true);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        s.custom
            .insert((plural.to_owned(), ns.to_owned(), name), obj);
    }

    /// Change an object as another client would (a new resourceVersion).
    pub fn edit_custom(&self, plural: &str, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut s = self.lock();
        let key = (plural.to_owned(), ns.to_owned(), name.to_owned());
        if let Some(mut obj) = s.custom.get(&key).cloned() {
            f(&mut obj);
            stamp(&mut s, &mut obj, false);
            s.custom.insert(key, obj);
        }
    }

    pub fn lease(&self, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .leases
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Put a Lease as another actor holds it (e.g. a medik8s operator).
    pub fn put_lease(&self, ns: &str, lease: Value) {
        let mut s = self.lock();
        let mut lease = lease;
        stamp(&mut s, &mut lease, true);
        let name = lease
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        s.leases.insert((ns.to_owned(), name), lease);
    }

    pub fn secret(&self, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .secrets
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
    }

    pub fn secret_names(&self, ns: &str) -> Vec<String> {
        self.lock()
            .secrets
            .keys()
            .filter(|(n, _)| n == ns)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// A pod as the API holds it (Terminating ones carry `metadata.deletionTimestamp`).
    pub fn pod(&self, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .pods
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Pods still present, as `namespace/name`.
    pub fn pods(&self) -> Vec<String> {
        self.lock()
            .pods
            .keys()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.lock().events.clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// How many requests arrived (without copying them).
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// The next `n` requests are answered 429.
    pub fn throttle(&self, n: u32) {
        self.lock().throttle = n;
    }

    /// Change a node behind the client's back (bumps its resourceVersion).
    pub fn touch(&self, name: &str, change: impl FnOnce(&mut Value)) {
        let mut s = self.lock();
        if let Some(mut n) = s.nodes.remove(name) {
            change(&mut n);
            stamp(&mut s, &mut n, false);
            notify(&s, "MODIFIED", &n);
            s.nodes.insert(name.to_owned(), n);
        }
    }
}

/// The garbage collector, for the objects oob gives an owner: a lease whose owner Node (by
/// uid) is gone is deleted, as the real collector does shortly after (here at once, which
/// is the harder case for a client: its next read or write finds nothing).
fn collect_garbage(s: &mut State) {
    let uids: std::collections::BTreeSet<String> = s
        .nodes
        .values()
        .filter_map(|n| n.pointer("/metadata/uid")?.as_str().map(str::to_owned))
        .collect();
    s.leases.retain(|_, lease| {
        let owners = lease
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        owners
            .iter()
            .all(|o| o["kind"] != "Node" || o["uid"].as_str().is_some_and(|u| uids.contains(u)))
    });
}

/// New resourceVersion (and uid/creationTimestamp for new objects).
fn stamp(s: &mut State, obj: &mut Value, created: bool) {
    s.resource_version += 1;
    obj["metadata"]["resourceVersion"] = json!(s.resource_version.to_string());
    if created {
        s.next_uid += 1;
        obj["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", s.next_uid));
        if obj["metadata"].get("creationTimestamp").is_none() {
            obj["metadata"]["creationTimestamp"] = json!("2026-11-22T10:00:00Z");
        }
    }
}

async fn handle(
    AxumState(api): AxumState<FakeApi>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_owned());
    let parsed: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let path = uri.path().trim_end_matches('/').to_owned();
    let mut s = api.lock();
    s.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().map(str::to_owned),
        content_type: content_type.clone(),
        body: parsed.clone(),
    });
    if s.throttle > 0 {
        s.throttle -= 1;
        let mut r = status(
            429,
            "TooManyRequests",
            "the server has received too many requests, please try again later",
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return r;
    }
    if !body.is_empty() && parsed.is_null() {
        return status(400, "BadRequest", "the request body is not valid JSON");
    }
    // The kubelets and the pod garbage collector, between any two requests.
    finish_terminating(&mut s);
    let segments: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["version"]) => ok(
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-oob-fake", "platform": "linux/amd64"}),
        ),
        ("GET", ["api"]) => ok(
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        ),
        ("GET", ["apis"]) => ok(&api_groups()),
        ("GET", ["api", "v1", "nodes"]) if is_watch(uri.query()) => watch_nodes(&s, uri.query()),
        ("GET", ["api", "v1", "nodes"]) => {
            let items: Vec<Value> = s.nodes.values().cloned().collect();
            ok(
                &json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": s.resource_version.to_string()}, "items": items}),
            )
        }
        ("POST", ["api", "v1", "nodes"]) => writes::create_node(&mut s, parsed),
        ("GET", ["api", "v1", "nodes", name]) => match s.nodes.get(*name) {
            Some(n) => ok(n),
            None => status(404, "NotFound", &format!("nodes \"{name}\" not found")),
        },
        ("PATCH", ["api", "v1", "nodes", name]) => {
            let how = (content_type.as_deref(), uri.query());
            patch_node(&mut s, name, how, &parsed, false)
        }
        ("PATCH", ["api", "v1", "nodes", name, "status"]) => {
            let how = (content_type.as_deref(), uri.query());
            patch_node(&mut s, name, how, &parsed, true)
        }
        ("DELETE", ["api", "v1", "nodes", name]) => match s.nodes.remove(*name) {
            Some(n) => {
                notify(&s, "DELETED", &n);
                collect_garbage(&mut s);
                ok(&n)
            }
            None => status(404, "NotFound", &format!("nodes \"{name}\" not found")),
        },
        ("POST", ["apis", "events.k8s.io", "v1", "namespaces", ns, "events"]) => {
            writes::create_event(&mut s, ns, parsed)
        }
        ("GET", ["api", "v1", "pods"]) => list_pods(&s, uri.query()),
        ("GET", ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", name]) => {
            match s.leases.get(&((*ns).to_owned(), (*name).to_owned())) {
                Some(l) => ok(l),
                None => status(
                    404,
                    "NotFound",
                    &format!("leases.coordination.k8s.io \"{name}\" not found"),
                ),
            }
        }
        ("POST", ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases"]) => {
            if s.namespaces
                .as_ref()
                .is_some_and(|all| !all.iter().any(|n| n == ns))
            {
                return status(404, "NotFound", &format!("namespaces \"{ns}\" not found"));
            }
            let r = writes::create_lease(&mut s, ns, parsed);
            collect_garbage(&mut s);
            r
        }
        ("DELETE", ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", name]) => {
            match s.leases.remove(&((*ns).to_owned(), (*name).to_owned())) {
                Some(l) => ok(&l),
                None => status(
                    404,
                    "NotFound",
                    &format!("leases.coordination.k8s.io \"{name}\" not found"),
                ),
            }
        }
        ("PUT", ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", name]) => {
            let r = writes::replace_lease(&mut s, ns, name, parsed);
            collect_garbage(&mut s);
            r
        }
        ("GET", ["apis", custom::GROUP, custom::VERSION, "namespaces", ns, plural]) => {
            custom::list(&s, ns, plural)
        }
        ("GET", ["apis", custom::GROUP, custom::VERSION, "namespaces", ns, plural, name]) => {
            custom::get(&s, ns, plural, name)
        }
        ("POST", ["apis", custom::GROUP, custom::VERSION, "namespaces", ns, plural]) => {
            custom::create(&mut s, ns, plural, parsed)
        }
        ("PUT", ["apis", custom::GROUP, custom::VERSION, "namespaces", ns, plural, name]) => {
            custom::replace(&mut s, ns, plural, name, parsed, false)
        }
        (
            "PUT",
            ["apis", custom::GROUP, custom::VERSION, "namespaces", ns, plural, name, "status"],
        ) => custom::replace(&mut s, ns, plural, name, parsed, true),
        ("DELETE", ["apis", custom::GROUP, custom::VERSION, "namespaces", ns, plural, name]) => {
            custom::delete(&mut s, ns, plural, name)
        }
        ("GET", ["api", "v1", "namespaces", ns, "configmaps", name]) => {
            match s.configmaps.get(&((*ns).to_owned(), (*name).to_owned())) {
                Some(c) => ok(c),
                None => status(404, "NotFound", &format!("configmaps \"{name}\" not found")),
            }
        }
        ("GET", ["api", "v1", "namespaces", ns, "secrets", name]) => {
            match s.secrets.get(&((*ns).to_owned(), (*name).to_owned())) {
                Some(c) => ok(c),
                None => status(404, "NotFound", &format!("secrets \"{name}\" not found")),
            }
        }
        ("POST", ["api", "v1", "namespaces", ns, "secrets"]) => {
            writes::create_secret(&mut s, ns, parsed)
        }
        ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => {
            match s.pods.get(&((*ns).to_owned(), (*name).to_owned())) {
                Some(p) => ok(p),
                None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
            }
        }
        ("DELETE", ["api", "v1", "namespaces", ns, "pods", name]) => {
            let grace = parsed
                .get("gracePeriodSeconds")
                .and_then(Value::as_i64)
                .or_else(|| query_value(uri.query(), "gracePeriodSeconds")?.parse().ok());
            match delete_pod(&mut s, &((*ns).to_owned(), (*name).to_owned()), grace) {
                Some(p) => ok(&p),
                None => status(404, "NotFound", &format!("pods \"{name}\" not found")),
            }
        }
        ("POST", ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
            evict(&mut s, ns, name)
        }
        ("GET", ["apis", "events.k8s.io", "v1", "namespaces", _, "events"]) => ok(
            &json!({"kind": "EventList", "apiVersion": "events.k8s.io/v1", "metadata": {}, "items": s.events}),
        ),
        _ => status(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({method} {path})"),
        ),
    }
}

fn api_groups() -> Value {
    let mut groups: Vec<Value> = ["events.k8s.io", "coordination.k8s.io", "policy"]
        .iter()
        .map(|g| {
            let v = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [v.clone()], "preferredVersion": v})
        })
        .collect();
    let v = json!({"groupVersion": "oob.dev/v1alpha1", "version": "v1alpha1"});
    groups.push(json!({"name": "oob.dev", "versions": [v.clone()], "preferredVersion": v}));
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// A PATCH of a Node (or its status): `how` is the content type and the query.
fn patch_node(
    s: &mut State,
    name: &str,
    how: (Option<&str>, Option<&str>),
    body: &Value,
    status_sub: bool,
) -> Response {
    let Some(current) = s.nodes.get(name).cloned() else {
        return status(404, "NotFound", &format!("nodes \"{name}\" not found"));
    };
    if let Some(rv) = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
    {
        if current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            != Some(rv)
        {
            return status(409, "Conflict", &format!("Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply your changes to the latest version and try again"));
        }
    }
    let mut next = current.clone();
    if let Err(e) = patch::apply(&mut next, body, how.0, query_value(how.1, "fieldManager")) {
        return patch_error(&e);
    }
    // The main resource ignores status; the status subresource changes only status.
    if status_sub {
        let new_status = next.get("status").cloned();
        next = current.clone();
        next["status"] = new_status.unwrap_or(Value::Null);
    } else {
        next["status"] = current.get("status").cloned().unwrap_or(Value::Null);
    }
    next["metadata"]["name"] = json!(name);
    let errs = validate::objects::node_update(&next, &current);
    if let Some(r) = validate::rejection(validate::NODE, name, &errs) {
        return r;
    }
    stamp(s, &mut next, false);
    notify(s, "MODIFIED", &next);
    s.nodes.insert(name.to_owned(), next.clone());
    ok(&next)
}

/// The answer to a patch that cannot be applied.
fn patch_error(e: &patch::PatchError) -> Response {
    match e {
        patch::PatchError::UnsupportedMediaType => {
            status(415, "UnsupportedMediaType", &e.to_string())
        }
        patch::PatchError::NoFieldManager => {
            let err = validate::FieldError::required("fieldManager", "is required for apply patch");
            let gk = validate::GroupKind {
                group: "meta.k8s.io",
                kind: "PatchOptions",
            };
            let body = validate::invalid_body(gk, "", &[err]);
            (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response()
        }
        patch::PatchError::JsonPatch(_) => status(422, "Invalid", &e.to_string()),
    }
}

/// `GET /api/v1/pods?fieldSelector=spec.nodeName=X` (the only field selector drain uses).
fn list_pods(s: &State, query: Option<&str>) -> Response {
    let node = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.strip_prefix("fieldSelector="))
        .map(|v| v.replace("%3D", "=").replace("%2F", "/"))
        .find_map(|v| v.strip_prefix("spec.nodeName=").map(str::to_owned));
    let items: Vec<Value> = s
        .pods
        .values()
        .filter(|p| {
            node.as_deref()
                .is_none_or(|n| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(n))
        })
        .cloned()
        .collect();
    ok(
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": s.resource_version.to_string()}, "items": items}),
    )
}

/// Whether `node`'s kubelet answers: the Node exists and its kubelet reports its Ready
/// condition (True, or False for a kubelet with a problem it reports); Unknown is the node
/// controller's word for a kubelet that stopped reporting.
fn kubelet_answers(s: &State, node: &str) -> bool {
    s.nodes.get(node).is_some_and(|n| {
        n.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "Ready" && (c["status"] == "True" || c["status"] == "False")
                })
            })
    })
}

/// Graceful deletion as the API server and the pod's kubelet carry it out: with
/// `gracePeriodSeconds: 0` the pod is gone at once; otherwise it is marked Terminating
/// (`deletionTimestamp`, `deletionGracePeriodSeconds`) and stays until its kubelet confirms
/// that it stopped ([`finish_terminating`]), which a node that is down never does. The pod
/// as the API returns it, `None` when there is none.
fn delete_pod(s: &mut State, key: &(String, String), grace: Option<i64>) -> Option<Value> {
    let mut pod = s.pods.get(key)?.clone();
    let grace = grace
        .or_else(|| pod.pointer("/spec/terminationGracePeriodSeconds")?.as_i64())
        .unwrap_or(30);
    // A negative grace period is taken as 1 s, as the API server does.
    let grace = if grace < 0 { 1 } else { grace };
    // As the pod strategy's CheckGracefulDelete: a finished pod, or one never scheduled, has
    // nothing to stop and goes at once, as does a grace of 0.
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    let unscheduled = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty();
    if grace == 0 || finished || unscheduled {
        return s.pods.remove(key);
    }
    // A second delete may shorten the grace period, never lengthen it.
    let current = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if current.is_none_or(|c| grace < c) {
        pod["metadata"]["deletionTimestamp"] = json!(rfc3339_in(grace));
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        stamp(s, &mut pod, false);
        s.pods.insert(key.clone(), pod.clone());
    }
    finish_terminating(s);
    Some(pod)
}

/// What the kubelets and the pod garbage collector do with Terminating pods: a pod on a node
/// whose kubelet answers stops and is removed; on a node that is gone, or NotReady with the
/// `node.kubernetes.io/out-of-service` taint, the pod GC force-deletes it; on any other node
/// that is down it stays Terminating.
fn finish_terminating(s: &mut State) {
    let gone: Vec<(String, String)> = s
        .pods
        .iter()
        .filter(|(_, p)| p.pointer("/metadata/deletionTimestamp").is_some())
        .filter(|(_, p)| {
            let node = p
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            let out_of_service = s.nodes.get(node).is_some_and(|n| {
                n.pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .is_some_and(|ts| {
                        ts.iter()
                            .any(|t| t["key"] == "node.kubernetes.io/out-of-service")
                    })
            });
            node.is_empty()
                || !s.nodes.contains_key(node)
                || kubelet_answers(s, node)
                || out_of_service
        })
        .map(|(k, _)| k.clone())
        .collect();
    for key in gone {
        s.pods.remove(&key);
    }
}

/// Now plus `seconds`, as RFC 3339 UTC (whole seconds, as the API server writes them).
fn rfc3339_in(seconds: i64) -> String {
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    format!("{at:.0}")
}

fn labels_match(selector: &Value, pod: &Value) -> bool {
    let Some(want) = selector.get("matchLabels").and_then(Value::as_object) else {
        return false;
    };
    want.iter()
        .all(|(k, v)| pod.pointer(&format!("/metadata/labels/{k}")) == Some(v))
}

/// policy/v1 eviction: refused with 429 while a PodDisruptionBudget allows no disruption.
fn evict(s: &mut State, ns: &str, name: &str) -> Response {
    let key = (ns.to_owned(), name.to_owned());
    let Some(pod) = s.pods.get(&key).cloned() else {
        return status(404, "NotFound", &format!("pods \"{name}\" not found"));
    };
    // As the eviction REST handler's canIgnorePDB: a pod that is not running, or is being
    // deleted already, takes nothing away from a budget.
    let ignore_budgets = pod.pointer("/metadata/deletionTimestamp").is_some()
        || matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed" | "Pending")
        );
    for pdb in s.pdbs.iter().filter(|_| !ignore_budgets) {
        if pdb
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            != ns
        {
            continue;
        }
        let Some(selector) = pdb.pointer("/spec/selector") else {
            continue;
        };
        if !labels_match(selector, &pod) {
            continue;
        }
        let healthy = s
            .pods
            .iter()
            .filter(|((pns, _), p)| {
                pns == ns
                    && labels_match(selector, p)
                    && p.pointer("/metadata/deletionTimestamp").is_none()
                    && p.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
            })
            .count() as i64;
        let expected = pdb
            .pointer("/status/expectedPods")
            .and_then(Value::as_i64)
            .unwrap_or(healthy);
        // What the disruption controller would publish as status.disruptionsAllowed, computed
        // from the live pods; a fixture may pin it (e.g. 0 for a budget that never allows).
        let allowed = match (
            pdb.pointer("/status/disruptionsAllowed")
                .and_then(Value::as_i64),
            pdb.pointer("/spec/minAvailable").and_then(Value::as_i64),
            pdb.pointer("/spec/maxUnavailable").and_then(Value::as_i64),
        ) {
            (Some(pinned), _, _) => pinned,
            (None, Some(min), _) => healthy - min,
            (None, None, Some(max)) => max - (expected - healthy),
            (None, None, None) => healthy,
        };
        if allowed <= 0 {
            let pdb_name = pdb
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("pdb");
            return status(429, "TooManyRequests", &format!("Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {pdb_name} needs {} healthy pods and has {healthy} currently", healthy - allowed));
        }
    }
    delete_pod(s, &key, None);
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

fn query_value<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn is_watch(query: Option<&str>) -> bool {
    matches!(query_value(query, "watch"), Some("1" | "true"))
}

/// `GET /api/v1/nodes?watch=1`: newline-delimited watch events. With `resourceVersion=0` (or
/// none) the current nodes come first as ADDED, as the real API server does; the stream ends
/// after `timeoutSeconds` (at most 300).
fn watch_nodes(s: &State, query: Option<&str>) -> Response {
    let Some(tx) = &s.node_watch else {
        return status(500, "InternalError", "watch unavailable");
    };
    let rx = tx.subscribe();
    let initial: Vec<Value> = match query_value(query, "resourceVersion") {
        None | Some("0") | Some("") => s
            .nodes
            .values()
            .map(|n| json!({"type": "ADDED", "object": n}))
            .collect(),
        Some(_) => Vec::new(),
    };
    let timeout = query_value(query, "timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(300)
        .min(300);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
    let line = |v: &Value| {
        let mut b = serde_json::to_vec(v).unwrap_or_default();
        b.push(b'\n');
        Ok::<Bytes, std::io::Error>(Bytes::from(b))
    };
    let first = futures_util::stream::iter(initial.iter().map(line).collect::<Vec<_>>());
    let live = futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Ok(event)) => return Some((line(&event), rx)),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                _ => return None,
            }
        }
    });
    let mut response = Response::new(axum::body::Body::from_stream(
        futures_util::StreamExt::chain(first, live),
    ));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ready: &str, taints: Value) -> State {
        let mut s = State::default();
        s.nodes.insert(
            "n1".into(),
            json!({"metadata": {"name": "n1"}, "spec": {"taints": taints},
                   "status": {"conditions": [{"type": "Ready", "status": ready}]}}),
        );
        s.pods.insert(
            ("default".into(), "p".into()),
            json!({"metadata": {"name": "p", "namespace": "default"},
                   "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 45},
                   "status": {"phase": "Running"}}),
        );
        s
    }

    #[test]
    fn a_deleted_pod_waits_for_its_kubelet_or_the_pod_gc() {
        let key = ("default".to_owned(), "p".to_owned());
        // A kubelet that answers confirms at once.
        let mut s = state("True", json!([]));
        assert!(delete_pod(&mut s, &key, None).is_some());
        assert!(s.pods.is_empty());
        // A node that is down: Terminating, with the pod's own grace period.
        let mut s = state("Unknown", json!([]));
        let p = delete_pod(&mut s, &key, None).unwrap();
        assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 45);
        let at: jiff::Timestamp = p["metadata"]["deletionTimestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let ahead = at.duration_since(jiff::Timestamp::now()).as_secs();
        assert!((40..=45).contains(&ahead), "{at}: {ahead}s ahead");
        finish_terminating(&mut s);
        assert_eq!(s.pods.len(), 1, "no kubelet confirms");
        // gracePeriodSeconds=0 removes it at once.
        assert!(delete_pod(&mut s, &key, Some(0)).is_some());
        assert!(s.pods.is_empty());
        // Out of service: the pod GC removes it.
        let mut s = state(
            "Unknown",
            json!([{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]),
        );
        delete_pod(&mut s, &key, None);
        assert!(s.pods.is_empty());
        // A kubelet that reports a problem (Ready=False) still stops its pods.
        let mut s = state("False", json!([]));
        delete_pod(&mut s, &key, None);
        assert!(s.pods.is_empty());
        // A second delete shortens the grace period; a finished pod goes at once.
        let mut s = state("Unknown", json!([]));
        delete_pod(&mut s, &key, None);
        let p = delete_pod(&mut s, &key, Some(5)).unwrap();
        assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 5);
        let p = delete_pod(&mut s, &key, Some(40)).unwrap();
        assert_eq!(
            p["metadata"]["deletionGracePeriodSeconds"], 5,
            "never lengthened"
        );
        s.pods.get_mut(&key).unwrap()["status"]["phase"] = json!("Failed");
        delete_pod(&mut s, &key, None);
        assert!(s.pods.is_empty());
    }
}
