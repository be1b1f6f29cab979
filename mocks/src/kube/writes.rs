//! The fake's create and replace handlers for Events, Leases and Secrets, each the way the
//! real API server orders it: namespace from the URL (400 on a mismatch), name generation from
//! `generateName`, validation (422 with field causes), then uniqueness (409).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::validate::{self, meta, objects, GroupKind};
use super::{ok, stamp, status, State};

/// A namespace in the body that is not the one in the URL (400).
struct NamespaceMismatch;

impl IntoResponse for NamespaceMismatch {
    fn into_response(self) -> Response {
        status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )
    }
}

/// Namespace from the URL and a generated name, before validation.
fn prepare(obj: &mut Value, ns: &str) -> Result<String, NamespaceMismatch> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    match meta.get("namespace").and_then(Value::as_str) {
        Some(given) if !given.is_empty() && given != ns => return Err(NamespaceMismatch),
        _ => meta["namespace"] = json!(ns),
    }
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("");
    let base = meta
        .get("generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() && !base.is_empty() {
        meta["name"] = json!(meta::generate_name(base));
    }
    Ok(meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned())
}

fn already_exists(gk: GroupKind, name: &str) -> Response {
    let resource = match gk.group {
        "" => format!("{}s", gk.kind.to_lowercase()),
        g => format!("{}s.{g}", gk.kind.to_lowercase()),
    };
    status(
        409,
        "AlreadyExists",
        &format!("{resource} \"{name}\" already exists"),
    )
}

fn created(obj: Value) -> Response {
    (StatusCode::CREATED, axum::Json(obj)).into_response()
}

/// `POST /apis/events.k8s.io/v1/namespaces/{ns}/events`.
pub(super) fn create_event(s: &mut State, ns: &str, mut event: Value) -> Response {
    let name = match prepare(&mut event, ns) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    if let Some(r) = validate::rejection(validate::EVENT, &name, &objects::event_create(&event, ns))
    {
        return r;
    }
    let taken = s.events.iter().any(|e| {
        e.pointer("/metadata/name") == event.pointer("/metadata/name")
            && e.pointer("/metadata/namespace") == event.pointer("/metadata/namespace")
    });
    if taken {
        return already_exists(validate::EVENT, &name);
    }
    stamp(s, &mut event, true);
    s.events.push(event.clone());
    created(event)
}

/// `POST /apis/coordination.k8s.io/v1/namespaces/{ns}/leases`.
pub(super) fn create_lease(s: &mut State, ns: &str, mut lease: Value) -> Response {
    let name = match prepare(&mut lease, ns) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    if let Some(r) = validate::rejection(validate::LEASE, &name, &objects::lease_create(&lease)) {
        return r;
    }
    let key = (ns.to_owned(), name.clone());
    if s.leases.contains_key(&key) {
        return already_exists(validate::LEASE, &name);
    }
    stamp(s, &mut lease, true);
    s.leases.insert(key, lease.clone());
    created(lease)
}

/// `PUT /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}`, in the real server's
/// order: namespace and name against the URL (400), existence (404), a resourceVersion at all
/// (422) and the current one (409), then validation (422).
pub(super) fn replace_lease(s: &mut State, ns: &str, name: &str, mut lease: Value) -> Response {
    if let Err(e) = prepare(&mut lease, ns) {
        return e.into_response();
    }
    let body_name = lease.pointer("/metadata/name").and_then(Value::as_str);
    if body_name != Some(name) {
        let given = body_name.unwrap_or("");
        let message =
            format!("the name of the object ({given}) does not match the name on the URL ({name})");
        return status(400, "BadRequest", &message);
    }
    let key = (ns.to_owned(), name.to_owned());
    let Some(current) = s.leases.get(&key).cloned() else {
        let message = format!("leases.coordination.k8s.io \"{name}\" not found");
        return status(404, "NotFound", &message);
    };
    let rv = lease.pointer("/metadata/resourceVersion");
    if rv.and_then(Value::as_str).is_none_or(str::is_empty) {
        return validate::missing_resource_version("leases", "coordination.k8s.io", name);
    }
    if rv != current.pointer("/metadata/resourceVersion") {
        return status(409, "Conflict", &format!("Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"));
    }
    // Identity fields the client left out are kept, as the server's update strategy does.
    for field in ["uid", "creationTimestamp"] {
        if lease["metadata"].get(field).is_none() {
            lease["metadata"][field] = current["metadata"][field].clone();
        }
    }
    let errs = objects::lease_update(&lease, &current);
    if let Some(r) = validate::rejection(validate::LEASE, name, &errs) {
        return r;
    }
    stamp(s, &mut lease, false);
    s.leases.insert(key, lease.clone());
    ok(&lease)
}

/// `POST /api/v1/namespaces/{ns}/secrets`.
pub(super) fn create_secret(s: &mut State, ns: &str, mut secret: Value) -> Response {
    let name = match prepare(&mut secret, ns) {
        Ok(n) => n,
        Err(e) => return e.into_response(),
    };
    if let Some(r) = validate::rejection(validate::SECRET, &name, &objects::secret_create(&secret))
    {
        return r;
    }
    let key = (ns.to_owned(), name.clone());
    if s.secrets.contains_key(&key) {
        return already_exists(validate::SECRET, &name);
    }
    stamp(s, &mut secret, true);
    s.secrets.insert(key, secret.clone());
    created(secret)
}

/// `POST /api/v1/nodes`: a kubelet registering (cluster-scoped: no namespace). A Node of
/// that name already there is `409 AlreadyExists`, as the real server answers a second
/// registration.
pub(super) fn create_node(s: &mut State, mut node: Value) -> Response {
    if !node.get("metadata").is_some_and(Value::is_object) {
        node["metadata"] = json!({});
    }
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if let Some(r) = validate::rejection(
        validate::NODE,
        &name,
        &meta::create(&node["metadata"], false),
    ) {
        return r;
    }
    if s.nodes.contains_key(&name) {
        return already_exists(validate::NODE, &name);
    }
    stamp(s, &mut node, true);
    s.nodes.insert(name, node.clone());
    super::notify(s, "ADDED", &node);
    created(node)
}
