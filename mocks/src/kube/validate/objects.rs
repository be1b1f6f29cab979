//! Per-type rules for what `oob` writes: events.k8s.io/v1 Events on create
//! (`ValidateEventCreate`, strict v1 path: field names are those of the internal type, so
//! `note` is reported as `message`), coordination.k8s.io/v1 Leases (`ValidateLeaseSpec`),
//! Secrets (`ValidateSecret`: data keys and total size) and Nodes (taints, conditions).

use serde_json::Value;

use super::meta;
use super::names::{dns1123_subdomain, label_value, qualified_name};
use super::{Bad, FieldError, Kind};

pub const REPORTING_INSTANCE_LENGTH_LIMIT: usize = 128;
pub const ACTION_LENGTH_LIMIT: usize = 128;
pub const REASON_LENGTH_LIMIT: usize = 128;
/// In bytes, as Go's `len`.
pub const NOTE_LENGTH_LIMIT: usize = 1024;
/// A Secret's data, all values together.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

const EVENT_TYPES: [&str; 2] = ["Normal", "Warning"];
const TAINT_EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
const CONDITION_STATUSES: [&str; 3] = ["True", "False", "Unknown"];

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn present(v: &Value, pointer: &str) -> bool {
    v.pointer(pointer).is_some_and(|x| !x.is_null())
}

/// `required` and `at most N characters` of reportingInstance, action and reason.
fn bounded(errs: &mut Vec<FieldError>, event: &Value, field: &str, limit: usize) {
    let value = text(event, &format!("/{field}"));
    if value.is_empty() {
        errs.push(FieldError::required(field, ""));
    }
    if value.len() > limit {
        let detail = format!("can have at most {limit} characters");
        errs.push(FieldError::invalid(field, "", &detail));
    }
}

/// An events.k8s.io/v1 Event created in `namespace` (metadata.name already generated).
pub fn event_create(event: &Value, namespace: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // The checks every Event with an eventTime gets (legacyValidateEvent).
    if text(event, "/regarding/namespace").is_empty()
        && namespace != "default"
        && namespace != "kube-system"
    {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            "",
            "does not match event.namespace",
        ));
    }
    let controller = text(event, "/reportingController");
    if controller.is_empty() {
        errs.push(FieldError::required("reportingController", ""));
    }
    for m in qualified_name(controller) {
        errs.push(FieldError::invalid("reportingController", controller, &m));
    }
    bounded(
        &mut errs,
        event,
        "reportingInstance",
        REPORTING_INSTANCE_LENGTH_LIMIT,
    );
    bounded(&mut errs, event, "action", ACTION_LENGTH_LIMIT);
    bounded(&mut errs, event, "reason", REASON_LENGTH_LIMIT);
    if text(event, "/note").len() > NOTE_LENGTH_LIMIT {
        let detail = format!("can have at most {NOTE_LENGTH_LIMIT} characters");
        errs.push(FieldError::invalid("message", "", &detail));
    }
    for m in dns1123_subdomain(namespace) {
        errs.push(FieldError::invalid("namespace", namespace, &m));
    }
    // The strict checks of events.k8s.io/v1.
    errs.extend(meta::create(
        event.get("metadata").unwrap_or(&Value::Null),
        true,
    ));
    if let Some(series) = event.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errs.push(FieldError::invalid(
                "series.count",
                "",
                "should be at least 2",
            ));
        }
        if !present(series, "/lastObservedTime") {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    if !present(event, "/eventTime") {
        errs.push(FieldError::required("eventTime", ""));
    }
    let type_ = text(event, "/type");
    if !EVENT_TYPES.contains(&type_) {
        let detail = format!("has invalid value: {type_}");
        errs.push(FieldError::invalid("type", "", &detail));
    }
    for (json, field) in [
        ("/deprecatedFirstTimestamp", "firstTimestamp"),
        ("/deprecatedLastTimestamp", "lastTimestamp"),
    ] {
        if present(event, json) {
            errs.push(FieldError::invalid(field, "", "needs to be unset"));
        }
    }
    if event
        .get("deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0
    {
        errs.push(FieldError::invalid("count", "", "needs to be unset"));
    }
    if !text(event, "/deprecatedSource/component").is_empty()
        || !text(event, "/deprecatedSource/host").is_empty()
    {
        errs.push(FieldError::invalid("source", "", "needs to be unset"));
    }
    errs
}

/// `LeaseSpec`: a positive duration, non-negative transitions, no preferred holder without a
/// strategy. `holderIdentity` is free text upstream.
pub fn lease_spec(spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(d) = spec.get("leaseDurationSeconds").and_then(Value::as_i64) {
        if d <= 0 {
            errs.push(FieldError::new(
                Kind::Invalid,
                "spec.leaseDurationSeconds",
                Bad::Int(d),
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = spec.get("leaseTransitions").and_then(Value::as_i64) {
        if t < 0 {
            errs.push(FieldError::new(
                Kind::Invalid,
                "spec.leaseTransitions",
                Bad::Int(t),
                "must be greater than or equal to 0",
            ));
        }
    }
    let strategy = text(spec, "/strategy");
    if !text(spec, "/preferredHolder").is_empty() && strategy.is_empty() {
        errs.push(FieldError::new(
            Kind::Forbidden,
            "spec.preferredHolder",
            Bad::None,
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

/// A new Lease.
pub fn lease_create(lease: &Value) -> Vec<FieldError> {
    let mut errs = meta::create(lease.get("metadata").unwrap_or(&Value::Null), true);
    errs.extend(lease_spec(lease.get("spec").unwrap_or(&Value::Null)));
    errs
}

/// A Lease replaced over `old`.
pub fn lease_update(lease: &Value, old: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let mut errs = meta::update(
        lease.get("metadata").unwrap_or(&null),
        old.get("metadata").unwrap_or(&null),
    );
    errs.extend(lease_spec(lease.get("spec").unwrap_or(&null)));
    errs
}

/// A new Secret: metadata, then each data key a ConfigMap key and all values at most 1 MiB.
/// (Values arrive base64-encoded; their decoded size is about three quarters of that.)
pub fn secret_create(secret: &Value) -> Vec<FieldError> {
    let mut errs = meta::create(secret.get("metadata").unwrap_or(&Value::Null), true);
    let mut total = 0usize;
    for (k, v) in secret
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        for m in super::names::config_map_key(k) {
            errs.push(FieldError::invalid(&format!("data[{k}]"), k, &m));
        }
        total += v.as_str().map_or(0, |s| s.len() / 4 * 3);
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    errs
}

/// A Node after a patch of `old`: metadata update rules, taints, conditions.
///
/// Taints are reported under `metadata.taints[i]`, not `spec.taints[i]`: upstream
/// `ValidateNode` builds their path from `metadata`, and the real server's messages say so.
/// Conditions are checked although upstream `ValidateNodeUpdate` leaves Node status alone: a
/// deliberate strictness beyond the real server, so that `oob` never publishes a condition
/// status other than `True`, `False` or `Unknown` that consumers would misread.
pub fn node_update(node: &Value, old: &Value) -> Vec<FieldError> {
    let null = Value::Null;
    let mut errs = meta::update(
        node.get("metadata").unwrap_or(&null),
        old.get("metadata").unwrap_or(&null),
    );
    errs.extend(taints(node.pointer("/spec/taints")));
    errs.extend(conditions(node.pointer("/status/conditions")));
    errs
}

fn taints(taints: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (i, t) in taints
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("metadata.taints[{i}]");
        let key = text(t, "/key");
        for m in qualified_name(key) {
            errs.push(FieldError::invalid(&format!("{at}.key"), key, &m));
        }
        let value = text(t, "/value");
        let msgs = label_value(value);
        if !msgs.is_empty() {
            let field = format!("{at}.value");
            errs.push(FieldError::invalid(&field, value, &msgs.join(";")));
        }
        let effect = text(t, "/effect");
        if effect.is_empty() {
            errs.push(FieldError::required(&format!("{at}.effect"), ""));
        } else if !TAINT_EFFECTS.contains(&effect) {
            let field = format!("{at}.effect");
            errs.push(FieldError::not_supported(&field, effect, &TAINT_EFFECTS));
        }
        if seen.contains(&(key, effect)) {
            errs.push(FieldError::new(
                Kind::Duplicate,
                &at,
                Bad::None,
                "taints must be unique by key and effect pair",
            ));
        }
        seen.push((key, effect));
    }
    errs
}

fn conditions(conditions: Option<&Value>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let all = conditions.and_then(Value::as_array).into_iter().flatten();
    for (i, c) in all.enumerate() {
        let at = format!("status.conditions[{i}]");
        if text(c, "/type").is_empty() {
            errs.push(FieldError::required(&format!("{at}.type"), ""));
        }
        let status = text(c, "/status");
        if !CONDITION_STATUSES.contains(&status) {
            let field = format!("{at}.status");
            errs.push(FieldError::not_supported(
                &field,
                status,
                &CONDITION_STATUSES,
            ));
        }
    }
    errs
}

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
