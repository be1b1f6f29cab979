//! `NodeOps` through the real kube client against the fake API server in `mocks/`, plus the
//! shape of every request (verb, path, content type, body), so that correctness does not rest
//! only on the fake's leniency.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use oob::k8s::{Condition, KubeNodeOps, NodeEvent, NodeOps, NodeOpsError, Taint, OUT_OF_SERVICE};
use oob_mocks::kube::{FakeApi, RunningApi};
use serde_json::{json, Value};

async fn start() -> (RunningApi, kube::Client) {
    let fixture: Value = serde_json::from_str(include_str!("fixtures/cluster.json")).unwrap();
    let api = FakeApi::start(&fixture, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let config = kube::Config::new(api.url().parse().unwrap());
    let client = oob::k8s::client(config).unwrap();
    (api, client)
}

fn ops(client: &kube::Client) -> KubeNodeOps {
    KubeNodeOps::new(client.clone(), "default", "oob-test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_sets_unschedulable_and_is_idempotent() {
    let (api, client) = start().await;
    let ops = ops(&client);
    assert!(!ops.get("node-1").await.unwrap().unschedulable);
    ops.set_unschedulable("node-1", true).await.unwrap();
    ops.set_unschedulable("node-1", true).await.unwrap();
    assert_eq!(
        api.api.node("node-1").unwrap()["spec"]["unschedulable"],
        true
    );
    assert!(ops.get("node-1").await.unwrap().unschedulable);
    ops.set_unschedulable("node-1", false).await.unwrap();
    assert_eq!(
        api.api.node("node-1").unwrap()["spec"]["unschedulable"],
        false
    );
    let info = ops.get("node-1").await.unwrap();
    assert_eq!(info.ready.as_deref(), Some("True"));
    assert_eq!(
        info.system_uuid.as_deref(),
        Some("6f1c7a52-0b3e-4d8a-9c41-000000000001")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_out_of_service_taint_is_added_and_removed_keeping_other_taints() {
    let (api, client) = start().await;
    let ops = ops(&client);
    let taint = Taint {
        key: OUT_OF_SERVICE.into(),
        value: Some("nodeshutdown".into()),
        effect: "NoExecute".into(),
    };
    ops.set_taint("node-2", OUT_OF_SERVICE, "NoExecute", Some(taint.clone()))
        .await
        .unwrap();
    ops.set_taint("node-2", OUT_OF_SERVICE, "NoExecute", Some(taint))
        .await
        .unwrap();
    let taints = ops.get("node-2").await.unwrap().taints;
    let keys: Vec<&str> = taints.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(
        keys,
        ["example.com/dedicated", OUT_OF_SERVICE],
        "added once, the other kept"
    );
    ops.set_taint("node-2", OUT_OF_SERVICE, "NoExecute", None)
        .await
        .unwrap();
    let taints = api.api.node("node-2").unwrap()["spec"]["taints"].clone();
    assert_eq!(taints.as_array().unwrap().len(), 1);
    assert_eq!(taints[0]["key"], "example.com/dedicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taint_update_that_loses_a_race_is_retried_on_the_new_version() {
    let (api, client) = start().await;
    // Someone else changes the node between our read and our write: the first patch is a 409.
    api.api.touch("node-3", |n| {
        n["metadata"]["labels"]["touched"] = json!("yes")
    });
    let ops = ops(&client);
    let taint = Taint {
        key: "oob.dev/fenced".into(),
        value: None,
        effect: "NoSchedule".into(),
    };
    ops.set_taint("node-3", "oob.dev/fenced", "NoSchedule", Some(taint))
        .await
        .unwrap();
    let node = api.api.node("node-3").unwrap();
    assert_eq!(node["metadata"]["labels"]["touched"], "yes");
    assert_eq!(node["spec"]["taints"][0]["key"], "oob.dev/fenced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_are_set_by_type_and_events_name_the_node() {
    let (api, client) = start().await;
    let ops = ops(&client);
    let cond = |status: &str| Condition {
        type_: "HardwareHealthy".into(),
        status: status.into(),
        reason: "SmartFailed".into(),
        message: "sda FAILED".into(),
    };
    ops.set_condition("node-1", cond("False")).await.unwrap();
    ops.set_condition("node-1", cond("True")).await.unwrap();
    let conditions = api.api.node("node-1").unwrap()["status"]["conditions"].clone();
    let types: Vec<&str> = conditions
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["Ready", "HardwareHealthy"],
        "merged by type, Ready untouched"
    );
    assert_eq!(conditions[1]["status"], "True");

    ops.publish(
        "node-2",
        NodeEvent {
            type_: "Warning".into(),
            reason: "PowerCycled".into(),
            action: "HardReboot".into(),
            note: "verified off, verified on".into(),
        },
    )
    .await
    .unwrap();
    let events = api.api.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["regarding"]["name"], "node-2");
    assert_eq!(events[0]["regarding"]["kind"], "Node");
    assert_eq!(
        events[0]["regarding"]["uid"],
        api.api.node("node-2").unwrap()["metadata"]["uid"]
    );
    assert_eq!(
        (events[0]["reason"].as_str(), events[0]["action"].as_str()),
        (Some("PowerCycled"), Some("HardReboot"))
    );

    ops.annotate("node-1", "oob.dev/paused", Some("true"))
        .await
        .unwrap();
    assert_eq!(
        ops.get("node-1")
            .await
            .unwrap()
            .annotations
            .get("oob.dev/paused")
            .map(String::as_str),
        Some("true")
    );
    ops.annotate("node-1", "oob.dev/paused", None)
        .await
        .unwrap();
    assert!(!ops
        .get("node-1")
        .await
        .unwrap()
        .annotations
        .contains_key("oob.dev/paused"));
    ops.delete("node-3").await.unwrap();
    assert!(api.api.node("node-3").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_errors_become_the_right_variants() {
    let (api, client) = start().await;
    let ops = ops(&client);
    assert!(matches!(
        ops.get("node-9").await,
        Err(NodeOpsError::NotFound { .. })
    ));
    let bad = Taint {
        key: "k".into(),
        value: None,
        effect: "Sometimes".into(),
    };
    let err = ops
        .set_taint("node-1", "k", "Sometimes", Some(bad))
        .await
        .unwrap_err();
    assert!(matches!(err, NodeOpsError::Invalid { .. }), "{err}");
    api.api.throttle(1);
    let err = ops.get("node-1").await.unwrap_err();
    assert!(
        matches!(err, NodeOpsError::Throttled { .. }) && err.is_retriable(),
        "{err}"
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let old = api.api.node("node-1").unwrap()["metadata"]["resourceVersion"].clone();
    api.api.touch("node-1", |n| {
        n["metadata"]["labels"]["changed"] = json!("elsewhere")
    });
    let stale = json!({"metadata": {"resourceVersion": old}, "spec": {"unschedulable": true}});
    let e = nodes
        .patch("node-1", &PatchParams::default(), &Patch::Merge(&stale))
        .await
        .unwrap_err();
    let err = NodeOpsError::from_kube("node-1", "patch", e);
    assert!(matches!(err, NodeOpsError::Conflict { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_sends_the_request_the_real_api_server_expects() {
    let (api, client) = start().await;
    let ops = ops(&client);
    ops.set_unschedulable("node-1", true).await.unwrap();
    let condition = |status: &str, reason: &str| Condition {
        type_: "OobRemediation".into(),
        status: status.into(),
        reason: reason.into(),
        message: "m".into(),
    };
    ops.set_condition("node-1", condition("True", "HardReboot"))
        .await
        .unwrap();
    // The same status again (another reason): the transition time stays.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    ops.set_condition("node-1", condition("True", "Fenced"))
        .await
        .unwrap();
    ops.cordon_as_oob("node-1", true).await.unwrap();
    ops.publish(
        "node-1",
        NodeEvent {
            type_: "Normal".into(),
            reason: "Cordoned".into(),
            action: "Cordon".into(),
            note: "n".into(),
        },
    )
    .await
    .unwrap();
    ops.annotate("node-1", "a", Some("b")).await.unwrap();
    ops.delete("node-1").await.unwrap();
    let shapes: Vec<(String, String, Option<String>)> = api
        .api
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.content_type))
        .collect();
    let want = [
        (
            "PATCH",
            "/api/v1/nodes/node-1",
            Some("application/merge-patch+json"),
        ),
        // The condition: the Node read first (its transition time), then the patch; twice.
        ("GET", "/api/v1/nodes/node-1", None),
        (
            "PATCH",
            "/api/v1/nodes/node-1/status",
            Some("application/strategic-merge-patch+json"),
        ),
        ("GET", "/api/v1/nodes/node-1", None),
        (
            "PATCH",
            "/api/v1/nodes/node-1/status",
            Some("application/strategic-merge-patch+json"),
        ),
        // oob's cordon: one merge patch, schedulability and mark together.
        (
            "PATCH",
            "/api/v1/nodes/node-1",
            Some("application/merge-patch+json"),
        ),
        ("GET", "/api/v1/nodes/node-1", None),
        (
            "POST",
            "/apis/events.k8s.io/v1/namespaces/default/events",
            Some("application/json"),
        ),
        (
            "PATCH",
            "/api/v1/nodes/node-1",
            Some("application/merge-patch+json"),
        ),
        ("DELETE", "/api/v1/nodes/node-1", Some("application/json")),
    ];
    assert_eq!(shapes.len(), want.len(), "{shapes:?}");
    for (got, (m, p, ct)) in shapes.iter().zip(want) {
        assert_eq!((got.0.as_str(), got.1.as_str()), (m, p));
        assert_eq!(got.2.as_deref(), ct, "{m} {p}");
    }
    let bodies: Vec<Value> = api.api.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies[0], json!({"spec": {"unschedulable": true}}));
    let first = &bodies[2]["status"]["conditions"][0];
    let second = &bodies[4]["status"]["conditions"][0];
    assert_eq!(first["type"], "OobRemediation");
    assert_eq!(second["reason"], "Fenced");
    assert_eq!(first["lastTransitionTime"], second["lastTransitionTime"]);
    assert_ne!(first["lastHeartbeatTime"], second["lastHeartbeatTime"]);
    assert_eq!(
        bodies[5],
        json!({"metadata": {"annotations": {"oob.dev/cordoned": "true"}}, "spec": {"unschedulable": true}})
    );
    assert_eq!(bodies[7]["regarding"]["name"], "node-1");
    assert_eq!(bodies[7]["reportingController"], "oob.dev/remediation");
    assert_eq!(bodies[8], json!({"metadata": {"annotations": {"a": "b"}}}));
}

fn fast(
    force: Option<oob::k8s::drain::VerifiedPowerOff>,
    emptydir: bool,
) -> oob::k8s::drain::DrainOptions {
    oob::k8s::drain::DrainOptions {
        deadline: std::time::Duration::from_secs(2),
        concurrency: 4,
        delete_emptydir_data: emptydir,
        retry_interval: std::time::Duration::from_millis(200),
        force,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_evicts_what_may_move_and_reports_what_blocks() {
    let (api, client) = start().await;
    let report = oob::k8s::drain::drain(&client, "node-1", &fast(None, false))
        .await
        .unwrap();
    assert_eq!(report.evicted, ["default/web-1"], "{report:?}");
    let skipped: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|(p, w)| (p.as_str(), w.as_str()))
        .collect();
    assert!(
        skipped.contains(&("kube-system/node-exporter-abcde", "DaemonSet-managed")),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&("kube-system/etcd-node-1", "mirror (static) pod")),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&("default/backup-28391", "completed")),
        "{skipped:?}"
    );
    let blocked: Vec<&str> = report.blocked.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(blocked.len(), 2, "{:?}", report.blocked);
    assert!(
        report
            .blocked
            .iter()
            .any(|(p, w)| p == "default/db-0" && w.contains("disruption budget")),
        "{:?}",
        report.blocked
    );
    assert!(
        report
            .blocked
            .iter()
            .any(|(p, w)| p == "default/cache-1" && w.contains("emptyDir")),
        "{:?}",
        report.blocked
    );
    assert!(!report.complete());
    let left = api.api.pods();
    assert!(
        left.contains(&"default/db-0".to_owned()) && !left.contains(&"default/web-1".to_owned())
    );
    assert!(
        left.contains(&"default/web-2".to_owned()),
        "other nodes untouched"
    );
    // The PDB refusal was retried, not given up at once.
    let evictions = api
        .api
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/namespaces/default/pods/db-0/eviction")
        .count();
    assert!(
        evictions >= 3,
        "retried every interval until the deadline: {evictions}"
    );
}

/// A node whose kubelet is gone: evicted pods are marked Terminating and stay (no kubelet
/// confirms they stopped) until the out-of-service taint lets the pod GC remove them, as on a
/// real cluster. The drain says so at once instead of calling them evicted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_evicted_from_a_dead_node_stay_terminating_until_it_is_out_of_service() {
    let (api, client) = start().await;
    api.api.touch("node-1", |n| {
        n["status"]["conditions"] =
            json!([{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]);
    });
    let report = oob::k8s::drain::drain(&client, "node-1", &fast(None, false))
        .await
        .unwrap();
    assert!(report.evicted.is_empty(), "{report:?}");
    assert!(
        report
            .blocked
            .iter()
            .any(|(p, w)| p == "default/web-1" && w.contains("stopped reporting (Ready=Unknown)")),
        "{:?}",
        report.blocked
    );
    // Said at once, not waited on until the deadline.
    assert!(
        !api.api
            .requests()
            .iter()
            .any(|r| r.method == "GET" && r.path == "/api/v1/namespaces/default/pods/web-1"),
        "the drain waited for a pod that cannot go"
    );
    let web = api.api.pod("default", "web-1").expect("still there");
    assert!(web["metadata"]["deletionTimestamp"].is_string(), "{web}");
    assert_eq!(web["metadata"]["deletionGracePeriodSeconds"], 30);
    // A Terminating pod takes nothing from its budget: evicting it again is no refusal.
    assert!(
        !report
            .blocked
            .iter()
            .any(|(p, w)| p == "default/web-1" && w.contains("budget")),
        "{:?}",
        report.blocked
    );

    // Out of service (after a verified power-off): the pod GC removes what is Terminating.
    api.api.touch("node-1", |n| {
        n["spec"]["taints"] = json!([{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]);
    });
    let report = oob::k8s::drain::drain(&client, "node-1", &fast(None, false))
        .await
        .unwrap();
    assert!(!api.api.pods().contains(&"default/web-1".to_owned()));
    assert!(
        !report.blocked.iter().any(|(p, _)| p == "default/web-1"),
        "{:?}",
        report.blocked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_deletion_needs_proof_for_this_very_node() {
    let (api, client) = start().await;
    let other = oob::k8s::drain::VerifiedPowerOff {
        node: "node-2".into(),
        evidence: "test".into(),
    };
    let report = oob::k8s::drain::drain(&client, "node-1", &fast(Some(other), true))
        .await
        .unwrap();
    assert!(
        report.force_deleted.is_empty(),
        "proof for another node is no proof"
    );
    assert!(api.api.pods().contains(&"default/db-0".to_owned()));
    assert!(
        report.evicted.contains(&"default/cache-1".to_owned()),
        "emptyDir allowed: {report:?}"
    );
    let proof = oob::k8s::drain::VerifiedPowerOff {
        node: "node-1".into(),
        evidence: "redfish PowerState Off".into(),
    };
    let report = oob::k8s::drain::drain(&client, "node-1", &fast(Some(proof), true))
        .await
        .unwrap();
    assert_eq!(report.force_deleted, ["default/db-0"]);
    assert!(report.complete());
    assert!(!api.api.pods().contains(&"default/db-0".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_finds_the_cluster_through_kubeconfig_and_drains() {
    let (api, _) = start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: u\ncurrent-context: fake\nusers:\n- name: u\n  user:\n    token: not-a-real-token\n",
            api.url()
        ),
    )
    .unwrap();
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let run = crate::common::oob(&["-o", "json", "node", "cordon", "node-2"], &env).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        api.api.node("node-2").unwrap()["spec"]["unschedulable"],
        true
    );
    assert!(!run.all().contains("not-a-real-token"));
    let run = crate::common::oob(
        &["-o", "json", "node", "drain", "node-1", "--timeout", "1"],
        &env,
    )
    .await;
    assert_eq!(
        run.code,
        1,
        "blocked pods are problems found: {}",
        run.all()
    );
    let doc = run.json();
    assert_eq!(doc["complete"], false);
    assert_eq!(doc["report"]["evicted"], json!(["default/web-1"]));
    assert_eq!(
        api.api.node("node-1").unwrap()["spec"]["unschedulable"],
        true,
        "drain cordons first"
    );
    assert!(
        run.stderr.contains("drain node-1: evicting 2 pods"),
        "progress: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("evicted default/web-1"),
        "progress: {}",
        run.stderr
    );
    let run = crate::common::oob(&["node", "uncordon", "node-2"], &env).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        api.api.node("node-2").unwrap()["spec"]["unschedulable"],
        false
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_command_has_a_valid_token_and_the_ca_hash_openssl_computes() {
    use base64::Engine as _;
    let (api, client) = start().await;
    let ca = oob_mocks::serve::SelfSigned::generate().unwrap();
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: https://10.1.0.10:6443\n    certificate-authority-data: {}\ncontexts: []\nusers: []\n",
        base64::engine::general_purpose::STANDARD.encode(&ca.cert_pem)
    );
    api.api.put_configmap(
        "kube-public",
        "cluster-info",
        json!({ "kubeconfig": kubeconfig }),
    );

    let (command, token) =
        oob::k8s::join::join_command(&client, std::time::Duration::from_secs(3600))
            .await
            .unwrap();
    // The CA hash, computed independently with openssl from the same certificate.
    let openssl = crate::common::openssl_ca_hash(&ca.cert_pem);
    assert!(
        command.starts_with("kubeadm join 10.1.0.10:6443 --token "),
        "{command}"
    );
    assert!(
        command.ends_with(&format!("--discovery-token-ca-cert-hash sha256:{openssl}")),
        "{command}"
    );

    let token_text = token.token();
    let (id, secret) = token_text.split_once('.').unwrap();
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    assert!(ok(id, 6) && ok(secret, 16), "{token_text}");
    assert!(
        !format!("{token:?}").contains(secret),
        "Debug hides the token secret"
    );
    let stored = api
        .api
        .secret("kube-system", &format!("bootstrap-token-{id}"))
        .expect("token Secret");
    assert_eq!(stored["type"], "bootstrap.kubernetes.io/token");
    let field = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(stored["data"][k].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(field("token-id"), id);
    assert_eq!(field("token-secret"), secret);
    assert_eq!(field("usage-bootstrap-authentication"), "true");
    assert_eq!(
        field("auth-extra-groups"),
        "system:bootstrappers:kubeadm:default-node-token"
    );
    let expiration: k8s_openapi::jiff::Timestamp = field("expiration").parse().unwrap();
    assert!(
        expiration > k8s_openapi::jiff::Timestamp::now(),
        "expires in the future"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_another_takes_over_when_renewals_stop() {
    use oob::k8s::lease::LeaseLock;
    let (_api, client) = start().await;
    let second = std::time::Duration::from_secs(1);
    let a = LeaseLock::new(
        client.clone(),
        "oob-system",
        "oob-leader",
        "replica-a",
        second,
    );
    let b = LeaseLock::new(
        client.clone(),
        "oob-system",
        "oob-leader",
        "replica-b",
        second,
    );
    assert!(a.try_acquire().await.unwrap(), "a creates and holds");
    assert!(!b.try_acquire().await.unwrap(), "b must wait");
    assert!(a.try_acquire().await.unwrap(), "a renews");
    assert!(!b.try_acquire().await.unwrap());
    // a stops renewing; once its lease has expired, b takes over and a has lost it.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(b.try_acquire().await.unwrap(), "b takes the expired lease");
    assert!(!a.try_acquire().await.unwrap(), "a no longer leads");
    b.release().await.unwrap();
    assert!(
        a.try_acquire().await.unwrap(),
        "released: a may take it at once"
    );

    // The per-node lock keeps the CLI and the service apart.
    let name = oob::k8s::lease::node_lock_name("node-1");
    let cli = LeaseLock::new(
        client.clone(),
        "oob-system",
        &name,
        "cli@ops-host",
        std::time::Duration::from_secs(60),
    );
    let service = LeaseLock::new(
        client,
        "oob-system",
        &name,
        "oob-serve",
        std::time::Duration::from_secs(60),
    );
    assert!(cli.try_acquire().await.unwrap());
    assert!(!service.try_acquire().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_taint_requests_have_the_expected_shape() {
    let (api, client) = start().await;
    let ops = ops(&client);
    ops.get("node-1").await.unwrap();
    let taint = Taint {
        key: OUT_OF_SERVICE.into(),
        value: Some("nodeshutdown".into()),
        effect: "NoExecute".into(),
    };
    ops.set_taint("node-1", OUT_OF_SERVICE, "NoExecute", Some(taint))
        .await
        .unwrap();
    let r = api.api.requests();
    assert_eq!(
        (r[0].method.as_str(), r[0].path.as_str()),
        ("GET", "/api/v1/nodes/node-1")
    );
    assert_eq!(
        (r[1].method.as_str(), r[1].path.as_str()),
        ("GET", "/api/v1/nodes/node-1"),
        "taint reads first"
    );
    assert_eq!(
        (r[2].method.as_str(), r[2].content_type.as_deref()),
        ("PATCH", Some("application/merge-patch+json"))
    );
    assert!(
        r[2].body["metadata"]["resourceVersion"].is_string(),
        "guarded by resourceVersion: {}",
        r[2].body
    );
    assert_eq!(r[2].body["spec"]["taints"][0]["key"], OUT_OF_SERVICE);
    assert_eq!(r[2].body["spec"]["taints"][0]["effect"], "NoExecute");
    assert!(r[2].body["spec"]["taints"][0]["timeAdded"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_watches_see_the_current_nodes_then_changes() {
    use futures_util::StreamExt as _;
    use kube::api::{WatchEvent, WatchParams};
    let (_api, client) = start().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let mut stream = nodes
        .watch(&WatchParams::default().timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    let mut added = Vec::new();
    while added.len() < 3 {
        match stream.next().await.unwrap().unwrap() {
            WatchEvent::Added(n) => added.push(n.metadata.name.unwrap()),
            other => panic!("expected ADDED first, got {other:?}"),
        }
    }
    assert_eq!(added, ["node-1", "node-2", "node-3"]);
    ops(&client)
        .set_unschedulable("node-2", true)
        .await
        .unwrap();
    match tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Modified(n) => {
            assert_eq!(n.metadata.name.as_deref(), Some("node-2"));
            assert_eq!(n.spec.unwrap().unschedulable, Some(true));
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
}

/// What the strict fake answers the Event oob used to send (`generateName: "{node}.oob."`),
/// word for word as a real kube-apiserver answered it.
const DNS_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

fn old_event(node: &str) -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"generateName": format!("{node}.oob.")},
        "eventTime": "2026-11-22T10:00:00.000000Z", "type": "Normal",
        "reason": "Cordoned", "action": "Cordon", "note": "n",
        "reportingController": "oob.dev/remediation", "reportingInstance": "oob-test",
        "regarding": {"apiVersion": "v1", "kind": "Node", "name": node},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dotted_event_generate_name_is_refused_and_publish_now_sends_a_valid_one() {
    let (api, client) = start().await;
    // The old prefix, through the kube client: 422 Invalid with the real server's message.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let old: k8s_openapi::api::events::v1::Event =
        serde_json::from_value(old_event("node-1")).unwrap();
    let kube::Error::Api(status) = events
        .create(&kube::api::PostParams::default(), &old)
        .await
        .unwrap_err()
    else {
        panic!("expected an API error");
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let tail = format!(
        " is invalid: metadata.generateName: Invalid value: \"node-1.oob.\": {DNS_SUBDOMAIN_MESSAGE}"
    );
    assert!(
        status
            .message
            .starts_with("Event.events.k8s.io \"node-1.oob.")
            && status.message.ends_with(&tail),
        "{}",
        status.message
    );
    // The same body raw, for the Status details the kube client does not keep.
    let url = format!(
        "{}/apis/events.k8s.io/v1/namespaces/default/events",
        api.url()
    );
    let response = reqwest::Client::new()
        .post(url)
        .json(&old_event("node-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["details"]["kind"], "Event");
    assert_eq!(body["details"]["group"], "events.k8s.io");
    assert_eq!(
        body["details"]["causes"],
        json!([{
            "reason": "FieldValueInvalid",
            "field": "metadata.generateName",
            "message": format!("Invalid value: \"node-1.oob.\": {DNS_SUBDOMAIN_MESSAGE}"),
        }])
    );
    assert!(api.api.events().is_empty(), "nothing stored");

    // oob's publish: accepted, and what was stored passes the same validation.
    let ops = ops(&client);
    let long_node = format!("{}.{}", "a".repeat(60), "b".repeat(192));
    for node in ["node-1", long_node.as_str()] {
        ops.publish(
            node,
            NodeEvent {
                type_: "Warning".into(),
                reason: "PowerCycled".into(),
                action: "HardReboot".into(),
                note: "é".repeat(600),
            },
        )
        .await
        .unwrap();
    }
    let stored = api.api.events();
    assert_eq!(stored.len(), 2);
    for event in &stored {
        let errs = oob_mocks::kube::validate::objects::event_create(event, "default");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            event["note"].as_str().unwrap().len(),
            1024,
            "cut at 1024 bytes"
        );
    }
    let name = stored[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(stored[0]["metadata"]["generateName"], "node-1-oob-");
    assert!(name.starts_with("node-1-oob-") && name.len() == "node-1-oob-".len() + 5);
    let long_name = stored[1]["metadata"]["name"].as_str().unwrap();
    assert!(long_name.len() <= 63, "{long_name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_patches_and_leases_the_real_server_would_refuse_are_refused() {
    let (api, client) = start().await;
    let ops = ops(&client);
    let err = ops
        .annotate("node-1", "oob.dev/not a key", Some("x"))
        .await
        .unwrap_err();
    let NodeOpsError::Invalid { message, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        message.starts_with(
            "Node \"node-1\" is invalid: metadata.annotations: Invalid value: \"oob.dev/not a key\": name part must consist of"
        ),
        "{message}"
    );
    let bad = Condition {
        type_: "OobRemediation".into(),
        status: "Yes".into(),
        reason: "R".into(),
        message: "m".into(),
    };
    let err = ops.set_condition("node-1", bad).await.unwrap_err();
    assert!(matches!(err, NodeOpsError::Invalid { .. }), "{err}");
    assert!(
        api.api.node("node-1").unwrap()["metadata"]["annotations"]
            .get("oob.dev/not a key")
            .is_none(),
        "nothing stored"
    );
    let url = format!(
        "{}/apis/coordination.k8s.io/v1/namespaces/oob-system/leases",
        api.url()
    );
    let lease = json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}});
    let response = reqwest::Client::new()
        .post(&url)
        .json(&lease)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["message"],
        "Lease.coordination.k8s.io \"l\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    );
    // A replace must say which version it replaces (Leases allow no unconditional update).
    let http = reqwest::Client::new();
    let lease = json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 15}});
    let created = http.post(&url).json(&lease).send().await.unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let replaced = http
        .put(format!("{url}/l"))
        .json(&lease)
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status().as_u16(), 422);
    let body: Value = replaced.json().await.unwrap();
    assert_eq!(
        body["message"],
        "leases.coordination.k8s.io \"l\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
    );
}

/// A Lease as a medik8s operator writes it for `node`: held by `holder`, renewed `age` ago.
fn medik8s_lease(node: &str, holder: &str, age: std::time::Duration, seconds: i32) -> Value {
    let renewed = std::time::SystemTime::now() - age;
    let t = k8s_openapi::jiff::Timestamp::try_from(renewed).unwrap();
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": format!("node-{node}"), "namespace": "medik8s-leases"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": seconds,
                 "acquireTime": t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                 "renewTime": t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                 "leaseTransitions": 2}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_node_lock_takes_the_medik8s_lease_and_yields_to_another_remediator() {
    use oob::k8s::lease::node_lock_name;
    let (api, client) = start().await;
    let ops = ops(&client);
    let lock = node_lock_name("node-1");
    let ttl = std::time::Duration::from_secs(600);
    // Free: oob's lease and the medik8s one, owned by the Node as the operators make it.
    assert!(ops.try_lock(&lock, "oob-a", ttl).await.unwrap());
    let lease = api
        .api
        .lease("medik8s-leases", "node-node-1")
        .expect("medik8s lease");
    assert_eq!(lease["spec"]["holderIdentity"], "oob");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 600);
    let owner = &lease["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("Node"), Some("node-1"))
    );
    assert_eq!(
        owner["uid"],
        api.api.node("node-1").unwrap()["metadata"]["uid"]
    );
    // Renewed by the same holder; given back: the medik8s lease is deleted.
    assert!(ops.try_lock(&lock, "oob-a", ttl).await.unwrap());
    ops.unlock(&lock, "oob-a").await.unwrap();
    assert!(api.api.lease("medik8s-leases", "node-node-1").is_none());

    // Self Node Remediation holds node-1: oob yields, says who, and keeps no lock of its own.
    api.api.put_lease(
        "medik8s-leases",
        medik8s_lease(
            "node-1",
            "self-node-remediation",
            std::time::Duration::from_secs(5),
            3600,
        ),
    );
    let held = ops.try_lock(&lock, "oob-a", ttl).await.unwrap_err();
    assert!(
        held.to_string().contains("held by self-node-remediation"),
        "{held}"
    );
    assert!(
        api.api.lease("default", &lock).unwrap()["spec"]["holderIdentity"].is_null(),
        "oob's own lease given back"
    );
    // Giving back what oob does not hold leaves the operator's lease alone.
    ops.unlock(&lock, "oob-a").await.unwrap();
    assert!(api.api.lease("medik8s-leases", "node-node-1").is_some());
    // Expired: taken over, one more transition.
    api.api.put_lease(
        "medik8s-leases",
        medik8s_lease(
            "node-2",
            "node-maintenance",
            std::time::Duration::from_secs(120),
            60,
        ),
    );
    assert!(ops
        .try_lock(&node_lock_name("node-2"), "oob-a", ttl)
        .await
        .unwrap());
    let taken = api.api.lease("medik8s-leases", "node-node-2").unwrap();
    assert_eq!(taken["spec"]["holderIdentity"], "oob");
    assert_eq!(taken["spec"]["leaseTransitions"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_medik8s_namespace_the_lock_is_oobs_alone() {
    let mut fixture: Value = serde_json::from_str(include_str!("fixtures/cluster.json")).unwrap();
    fixture["namespaces"] = json!(["default", "oob-system", "kube-system", "kube-public"]);
    let api = FakeApi::start(&fixture, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = oob::k8s::client(kube::Config::new(api.url().parse().unwrap())).unwrap();
    let ops = ops(&client);
    let lock = oob::k8s::lease::node_lock_name("node-1");
    let ttl = std::time::Duration::from_secs(600);
    assert!(ops.try_lock(&lock, "oob-a", ttl).await.unwrap());
    assert!(api.api.lease("medik8s-leases", "node-node-1").is_none());
    assert!(
        !ops.try_lock(&lock, "oob-b", ttl).await.unwrap(),
        "oob's own lease still excludes"
    );
}

#[tokio::test]
async fn node_healthchecks_lease_holds_the_node_for_oob_only_when_it_asked_oob() {
    use oob::k8s::lease::node_lock_name;
    let (api, client) = start().await;
    let ops = ops(&client);
    let lock = node_lock_name("node-1");
    let ttl = std::time::Duration::from_secs(60);
    // NHC took the node's lease when it created a remediation (its holder convention).
    api.api.put_lease(
        "medik8s-leases",
        medik8s_lease(
            "node-1",
            "NodeHealthCheck-nhc-worker",
            std::time::Duration::from_secs(5),
            660,
        ),
    );
    // For another remediator (no OobRemediation from NHC for node-1): oob yields.
    let held = ops.try_lock(&lock, "oob-a", ttl).await.unwrap_err();
    assert!(
        held.to_string().contains("NodeHealthCheck-nhc-worker"),
        "{held}"
    );
    // NHC asked oob: the node is held for oob; NHC's lease untouched, also when oob lets go.
    ops.set_requested(["node-1".to_owned()].into());
    assert!(ops.try_lock(&lock, "oob-a", ttl).await.unwrap());
    let lease = api.api.lease("medik8s-leases", "node-node-1").unwrap();
    assert_eq!(
        lease["spec"]["holderIdentity"],
        "NodeHealthCheck-nhc-worker"
    );
    ops.unlock(&lock, "oob-a").await.unwrap();
    assert_eq!(
        api.api.lease("medik8s-leases", "node-node-1").unwrap()["spec"]["holderIdentity"],
        "NodeHealthCheck-nhc-worker"
    );
}
