//! One test per rule, with the shapes `oob` sends as the valid examples.

use super::*;
use serde_json::json;

fn event() -> Value {
    json!({
        "metadata": {"name": "node-1-oob-x7k2p", "generateName": "node-1-oob-", "namespace": "default"},
        "eventTime": "2026-11-22T10:00:00.000000Z",
        "type": "Warning", "reason": "PowerCycled", "action": "HardReboot", "note": "ok",
        "reportingController": "oob.dev/remediation", "reportingInstance": "oob-0",
        "regarding": {"apiVersion": "v1", "kind": "Node", "name": "node-1"},
    })
}

fn fields(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(|e| e.field.clone()).collect()
}

#[test]
fn the_event_oob_sends_is_valid() {
    assert!(event_create(&event(), "default").is_empty());
    assert!(event_create(&event(), "kube-system").is_empty());
}

#[test]
fn event_required_fields_are_reported_as_required() {
    let mut e = event();
    for f in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
        "eventTime",
    ] {
        e.as_object_mut().unwrap().remove(f);
    }
    let errs = event_create(&e, "default");
    let required: Vec<String> = errs
        .iter()
        .filter(|e| e.kind == Kind::Required)
        .map(|e| e.field.clone())
        .collect();
    assert_eq!(
        required,
        [
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "eventTime"
        ]
    );
}

#[test]
fn event_reporting_controller_is_a_qualified_name() {
    let mut e = event();
    e["reportingController"] = json!("oob.dev/remediation/x");
    assert_eq!(
        fields(&event_create(&e, "default")),
        ["reportingController"]
    );
    e["reportingController"] = json!("oob_controller");
    assert!(event_create(&e, "default").is_empty());
}

#[test]
fn event_limits_count_bytes() {
    let mut e = event();
    e["reportingInstance"] = json!("i".repeat(128));
    e["action"] = json!("a".repeat(128));
    e["reason"] = json!("r".repeat(128));
    e["note"] = json!("é".repeat(512));
    assert!(event_create(&e, "default").is_empty(), "at the limits");
    e["reportingInstance"] = json!("i".repeat(129));
    e["action"] = json!("a".repeat(129));
    e["reason"] = json!("r".repeat(129));
    e["note"] = json!(format!("{}x", "é".repeat(512)));
    let errs = event_create(&e, "default");
    assert_eq!(
        fields(&errs),
        ["reportingInstance", "action", "reason", "message"]
    );
    assert_eq!(
        errs[3].to_string(),
        "message: Invalid value: \"\": can have at most 1024 characters"
    );
}

#[test]
fn event_type_is_normal_or_warning() {
    let mut e = event();
    e["type"] = json!("Info");
    let errs = event_create(&e, "default");
    assert_eq!(
        errs[0].to_string(),
        "type: Invalid value: \"\": has invalid value: Info"
    );
}

#[test]
fn event_about_a_cluster_object_lives_in_default_or_kube_system() {
    let errs = event_create(&event(), "oob-system");
    assert_eq!(fields(&errs), ["involvedObject.namespace"]);
    let mut e = event();
    e["regarding"]["namespace"] = json!("oob-system");
    e["metadata"]["namespace"] = json!("oob-system");
    assert!(event_create(&e, "oob-system").is_empty());
}

#[test]
fn event_series_needs_a_count_of_two_and_a_last_observed_time() {
    let mut e = event();
    e["series"] = json!({"count": 1});
    assert_eq!(
        fields(&event_create(&e, "default")),
        ["series.count", "series.lastObservedTime"]
    );
    e["series"] = json!({"count": 2, "lastObservedTime": "2026-11-22T10:00:00.000000Z"});
    assert!(event_create(&e, "default").is_empty());
}

#[test]
fn event_deprecated_fields_must_be_unset() {
    let mut e = event();
    e["deprecatedFirstTimestamp"] = json!("2026-11-22T10:00:00Z");
    e["deprecatedLastTimestamp"] = json!("2026-11-22T10:00:00Z");
    e["deprecatedCount"] = json!(3);
    e["deprecatedSource"] = json!({"component": "oob"});
    assert_eq!(
        fields(&event_create(&e, "default")),
        ["firstTimestamp", "lastTimestamp", "count", "source"]
    );
}

#[test]
fn event_metadata_is_checked_on_create() {
    let mut e = event();
    e["metadata"]["generateName"] = json!("node-1.oob.");
    let errs = event_create(&e, "default");
    assert_eq!(fields(&errs), ["metadata.generateName"]);
}

fn lease(spec: Value) -> Value {
    json!({"metadata": {"name": "oob-node-node-1", "namespace": "oob-system"}, "spec": spec})
}

#[test]
fn lease_duration_is_positive_and_transitions_not_negative() {
    let ok = json!({"holderIdentity": "oob-0", "leaseDurationSeconds": 15, "leaseTransitions": 0});
    assert!(lease_create(&lease(ok)).is_empty());
    let errs = lease_create(&lease(
        json!({"leaseDurationSeconds": 0, "leaseTransitions": -1}),
    ));
    assert_eq!(
        errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
            "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"
        ]
    );
}

#[test]
fn lease_preferred_holder_needs_a_strategy() {
    let errs = lease_create(&lease(json!({"preferredHolder": "b"})));
    assert_eq!(fields(&errs), ["spec.preferredHolder"]);
    let ok = json!({"preferredHolder": "b", "strategy": "OldestEmulationVersion"});
    assert!(lease_create(&lease(ok)).is_empty());
}

#[test]
fn lease_names_are_dns_subdomains() {
    let mut l = lease(json!({}));
    l["metadata"]["name"] = json!(format!("oob-node-{}", "a".repeat(245)));
    assert_eq!(fields(&lease_create(&l)), ["metadata.name"]);
}

#[test]
fn lease_updates_need_the_resource_version() {
    let mut old = lease(json!({}));
    old["metadata"]["resourceVersion"] = json!("7");
    let mut new = old.clone();
    assert!(lease_update(&new, &old).is_empty());
    new["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert_eq!(
        fields(&lease_update(&new, &old)),
        ["metadata.resourceVersion"]
    );
}

#[test]
fn secret_data_keys_are_config_map_keys() {
    let s = json!({"metadata": {"name": "bootstrap-token-abc123", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token", "data": {"token-id": "YWJjMTIz", "usage-bootstrap-signing": "dHJ1ZQ=="}});
    assert!(secret_create(&s).is_empty());
    let mut bad = s.clone();
    bad["data"]["a/b"] = json!("eA==");
    let errs = secret_create(&bad);
    assert_eq!(fields(&errs), ["data[a/b]"]);
}

fn node() -> Value {
    json!({"metadata": {"name": "node-1", "resourceVersion": "4", "uid": "u",
        "annotations": {"oob.dev/cordoned": "true"}, "labels": {"kubernetes.io/hostname": "node-1"}},
        "spec": {"taints": [{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
}

#[test]
fn node_taints_have_qualified_keys_label_values_and_known_effects() {
    let old = node();
    assert!(node_update(&old, &old).is_empty());
    let mut n = old.clone();
    n["spec"]["taints"] = json!([
        {"key": "bad key", "value": "-v", "effect": "Sometimes"},
        {"key": "k", "effect": ""},
        {"key": "k", "effect": ""},
    ]);
    assert_eq!(
        fields(&node_update(&n, &old)),
        [
            "metadata.taints[0].key",
            "metadata.taints[0].value",
            "metadata.taints[0].effect",
            "metadata.taints[1].effect",
            "metadata.taints[2].effect",
            "metadata.taints[2]"
        ]
    );
}

#[test]
fn node_taint_value_messages_are_joined_into_one_error() {
    let old = node();
    let mut n = old.clone();
    n["spec"]["taints"] =
        json!([{"key": "k", "value": format!("-{}", "v".repeat(63)), "effect": "NoExecute"}]);
    let errs = node_update(&n, &old);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0]
        .detail
        .starts_with("must be no more than 63 characters;a valid label"));
}

#[test]
fn node_conditions_need_a_type_and_a_known_status() {
    let old = node();
    let mut n = old.clone();
    n["status"]["conditions"] = json!([{"status": "Maybe"}]);
    let errs = node_update(&n, &old);
    assert_eq!(
        fields(&errs),
        ["status.conditions[0].type", "status.conditions[0].status"]
    );
    assert_eq!(errs[1].kind, Kind::NotSupported);
}

#[test]
fn node_annotations_and_labels_are_checked_on_patch() {
    let old = node();
    let mut n = old.clone();
    n["metadata"]["annotations"]["oob.dev/Bad_Key!"] = json!("x");
    n["metadata"]["labels"]["k"] = json!("v".repeat(64));
    assert_eq!(
        fields(&node_update(&n, &old)),
        ["metadata.labels", "metadata.annotations"]
    );
}
