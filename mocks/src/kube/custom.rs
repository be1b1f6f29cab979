//! oob's custom resources in the fake API server (`oob.dev/v1alpha1`: `oobremediations`
//! with a status subresource, `oobremediationtemplates`), served the way the real server
//! serves a CRD with `subresources.status`: the main resource ignores `status` (dropped on
//! create, kept on update), `/status` changes only `status`; updates need the current
//! resourceVersion (422 without one, 409 on a stale one); names are DNS subdomains; the
//! schema's required fields and enums are enforced (422 with the field). A CRD that is not
//! installed (`without_crds`) answers 404 like a real server.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::validate::{self, meta, names, FieldError, GroupKind};
use super::{ok, stamp, status, State};

pub const GROUP: &str = "oob.dev";
pub const VERSION: &str = "v1alpha1";

/// (plural, kind, has a status subresource).
const KINDS: [(&str, &str, bool); 2] = [
    ("oobremediations", "OobRemediation", true),
    ("oobremediationtemplates", "OobRemediationTemplate", false),
];

fn kind_of(plural: &str) -> Option<(&'static str, bool)> {
    KINDS
        .iter()
        .find(|(p, _, _)| *p == plural)
        .map(|(_, k, s)| (*k, *s))
}

fn static_plural(plural: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(p, _, _)| *p == plural)
        .map_or("oobremediations", |(p, _, _)| p)
}

fn gk(kind: &'static str) -> GroupKind {
    GroupKind { group: GROUP, kind }
}

fn not_found(plural: &str, name: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("{plural}.{GROUP} \"{name}\" not found"),
    )
}

fn no_resource(plural: &str) -> Response {
    status(
        404,
        "NotFound",
        &format!("the server could not find the requested resource ({plural}.{GROUP})"),
    )
}

/// What the real server does to fields the structural schema does not declare: drops them
/// (pruning), silently. The declared fields, from deploy/crd-*.yaml.
fn prune(kind: &str, obj: &mut Value) {
    fn keep(v: &mut Value, fields: &[&str]) {
        if let Some(o) = v.as_object_mut() {
            o.retain(|k, _| fields.contains(&k.as_str()));
        }
    }
    const SPEC: &[&str] = &["nodeName", "strategy"];
    if kind == "OobRemediationTemplate" {
        keep(&mut obj["spec"], &["template"]);
        keep(&mut obj["spec"]["template"], &["spec"]);
        // A template names no node: NHC copies it into every request it makes.
        keep(&mut obj["spec"]["template"]["spec"], &["strategy"]);
        return;
    }
    if obj.get("spec").is_some() {
        keep(&mut obj["spec"], SPEC);
    }
    let Some(status) = obj.get_mut("status") else {
        return;
    };
    keep(
        status,
        &[
            "node",
            "stage",
            "episode",
            "lastStep",
            "position",
            "steps",
            "findings",
            "report",
            "conditions",
            "messages",
        ],
    );
    let lists: [(&str, &[&str]); 3] = [
        (
            "steps",
            &[
                "key", "action", "intentMs", "before", "outcome", "detail", "doneMs",
            ],
        ),
        (
            "conditions",
            &[
                "type",
                "status",
                "observedGeneration",
                "lastTransitionTime",
                "reason",
                "message",
            ],
        ),
        (
            "messages",
            &["id", "kind", "createdMs", "body", "delivered"],
        ),
    ];
    for (list, fields) in lists {
        if let Some(items) = status.get_mut(list).and_then(Value::as_array_mut) {
            for item in items {
                keep(item, fields);
            }
        }
    }
}

/// etcd's limit on one object (the API server answers 413 above it).
const OBJECT_MAX_BYTES: usize = 1_572_864;

fn too_large(obj: &Value) -> Option<Response> {
    let size = serde_json::to_vec(obj).map_or(0, |v| v.len());
    (size > OBJECT_MAX_BYTES).then(|| {
        status(
            413,
            "RequestEntityTooLarge",
            &format!("Request entity too large: limit is {OBJECT_MAX_BYTES}"),
        )
    })
}

/// The schema's checks (deploy/crd-*.yaml): required fields and enums.
fn schema(kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let strategy = match kind {
        "OobRemediation" => obj.pointer("/spec/strategy"),
        _ => obj.pointer("/spec/template/spec/strategy"),
    };
    if let Some(s) = strategy {
        if s.as_str() != Some("Ladder") {
            errs.push(FieldError::not_supported(
                "spec.strategy",
                s.as_str().unwrap_or_default(),
                &["Ladder"],
            ));
        }
    }
    if kind == "OobRemediationTemplate" && obj.pointer("/spec/template/spec").is_none() {
        errs.push(FieldError::required("spec.template.spec", ""));
    }
    if let Some(conds) = obj.pointer("/status/conditions") {
        for (i, c) in conds.as_array().into_iter().flatten().enumerate() {
            for f in ["type", "status", "lastTransitionTime", "reason", "message"] {
                if c.get(f).is_none() {
                    errs.push(FieldError::required(
                        &format!("status.conditions[{i}].{f}"),
                        "",
                    ));
                }
            }
            if let Some(s) = c.get("status") {
                if !["True", "False", "Unknown"].iter().any(|a| s == *a) {
                    errs.push(FieldError::not_supported(
                        &format!("status.conditions[{i}].status"),
                        s.as_str().unwrap_or_default(),
                        &["False", "True", "Unknown"],
                    ));
                }
            }
            if c.get("reason").and_then(Value::as_str) == Some("") {
                errs.push(FieldError::invalid(
                    &format!("status.conditions[{i}].reason"),
                    "\"\"",
                    "should be at least 1 chars long",
                ));
            }
        }
    }
    if let Some(steps) = obj.pointer("/status/steps") {
        let mut keys = std::collections::BTreeSet::new();
        for (i, st) in steps.as_array().into_iter().flatten().enumerate() {
            for f in ["key", "action", "intentMs"] {
                if st.get(f).is_none() {
                    errs.push(FieldError::required(&format!("status.steps[{i}].{f}"), ""));
                }
            }
            // x-kubernetes-list-type: map, keyed by `key`.
            if let Some(k) = st.get("key").and_then(Value::as_str) {
                if !keys.insert(k.to_owned()) {
                    errs.push(FieldError::new(
                        validate::Kind::Duplicate,
                        &format!("status.steps[{i}]"),
                        validate::Bad::Str(k.to_owned()),
                        "",
                    ));
                }
            }
        }
    }
    errs
}

fn prepare(obj: &mut Value, ns: &str, plural: &str, kind: &str) -> Result<String, Box<Response>> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(given) if !given.is_empty() && given != ns => {
            return Err(Box::new(status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")));
        }
        _ => obj["metadata"]["namespace"] = json!(ns),
    }
    if obj.get("apiVersion").and_then(Value::as_str) != Some("oob.dev/v1alpha1")
        || obj.get("kind").and_then(Value::as_str) != Some(kind)
    {
        return Err(Box::new(status(
            400,
            "BadRequest",
            &format!(
                "the API version or kind in the body does not match {plural}.{GROUP}/{VERSION}"
            ),
        )));
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let base = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() && !base.is_empty() {
        obj["metadata"]["name"] = json!(meta::generate_name(base));
    }
    Ok(obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned())
}

pub(super) fn list(s: &State, ns: &str, plural: &str) -> Response {
    let Some((kind, _)) = kind_of(plural).filter(|_| s.crds) else {
        return no_resource(plural);
    };
    let items: Vec<Value> = s
        .custom
        .iter()
        .filter(|((p, n, _), _)| p == plural && n == ns)
        .map(|(_, v)| v.clone())
        .collect();
    ok(&json!({
        "kind": format!("{kind}List"), "apiVersion": "oob.dev/v1alpha1",
        "metadata": {"resourceVersion": s.resource_version.to_string()}, "items": items,
    }))
}

pub(super) fn get(s: &State, ns: &str, plural: &str, name: &str) -> Response {
    if kind_of(plural).filter(|_| s.crds).is_none() {
        return no_resource(plural);
    }
    match s
        .custom
        .get(&(plural.to_owned(), ns.to_owned(), name.to_owned()))
    {
        Some(o) => ok(o),
        None => not_found(plural, name),
    }
}

pub(super) fn create(s: &mut State, ns: &str, plural: &str, mut obj: Value) -> Response {
    let Some((kind, has_status)) = kind_of(plural).filter(|_| s.crds) else {
        return no_resource(plural);
    };
    let name = match prepare(&mut obj, ns, plural, kind) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    if has_status {
        // The status subresource: a create does not set status.
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    prune(kind, &mut obj);
    if let Some(r) = too_large(&obj) {
        return r;
    }
    let mut errs: Vec<FieldError> = meta::create(&obj["metadata"], true);
    for e in names::name_is_dns_subdomain(&name, false) {
        errs.push(FieldError::invalid(
            "metadata.name",
            &format!("\"{name}\""),
            &e,
        ));
    }
    errs.extend(schema(kind, &obj));
    if let Some(r) = validate::rejection(gk(kind), &name, &errs) {
        return r;
    }
    let key = (plural.to_owned(), ns.to_owned(), name.clone());
    if s.custom.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            &format!("{plural}.{GROUP} \"{name}\" already exists"),
        );
    }
    stamp(s, &mut obj, true);
    obj["metadata"]["generation"] = json!(1);
    s.custom.insert(key, obj.clone());
    (StatusCode::CREATED, axum::Json(obj)).into_response()
}

/// `PUT …/NAME` (`subresource` false) or `PUT …/NAME/status` (true).
pub(super) fn replace(
    s: &mut State,
    ns: &str,
    plural: &str,
    name: &str,
    mut obj: Value,
    subresource: bool,
) -> Response {
    let Some((kind, has_status)) = kind_of(plural).filter(|_| s.crds) else {
        return no_resource(plural);
    };
    if subresource && !has_status {
        return no_resource(plural);
    }
    if let Err(r) = prepare(&mut obj, ns, plural, kind) {
        return *r;
    }
    if obj.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return status(
            400,
            "BadRequest",
            "the name of the object does not match the name on the URL",
        );
    }
    let key = (plural.to_owned(), ns.to_owned(), name.to_owned());
    let Some(current) = s.custom.get(&key).cloned() else {
        return not_found(plural, name);
    };
    let rv = obj.pointer("/metadata/resourceVersion");
    if rv.and_then(Value::as_str).is_none_or(str::is_empty) {
        return validate::missing_resource_version(static_plural(plural), GROUP, name);
    }
    if rv != current.pointer("/metadata/resourceVersion") {
        return status(409, "Conflict", &format!("Operation cannot be fulfilled on {plural}.{GROUP} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"));
    }
    let mut next = if subresource {
        // Only status changes through /status.
        let mut n = current.clone();
        n["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
        if n["status"].is_null() {
            if let Some(o) = n.as_object_mut() {
                o.remove("status");
            }
        }
        n
    } else {
        let mut n = obj;
        for field in ["uid", "creationTimestamp", "generation"] {
            n["metadata"][field] = current["metadata"][field].clone();
        }
        if has_status {
            match current.get("status") {
                Some(st) => n["status"] = st.clone(),
                None => {
                    if let Some(o) = n.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        if n.get("spec") != current.get("spec") {
            let g = current
                .pointer("/metadata/generation")
                .and_then(Value::as_u64)
                .unwrap_or(1);
            n["metadata"]["generation"] = json!(g + 1);
        }
        n
    };
    prune(kind, &mut next);
    if let Some(r) = too_large(&next) {
        return r;
    }
    let mut errs = meta::update(&next["metadata"], &current["metadata"]);
    errs.extend(schema(kind, &next));
    if let Some(r) = validate::rejection(gk(kind), name, &errs) {
        return r;
    }
    stamp(s, &mut next, false);
    s.custom.insert(key, next.clone());
    ok(&next)
}

pub(super) fn delete(s: &mut State, ns: &str, plural: &str, name: &str) -> Response {
    if kind_of(plural).filter(|_| s.crds).is_none() {
        return no_resource(plural);
    }
    match s
        .custom
        .remove(&(plural.to_owned(), ns.to_owned(), name.to_owned()))
    {
        Some(o) => ok(&o),
        None => not_found(plural, name),
    }
}
