//! `deploy/`: every manifest parses into its Kubernetes type (strictly: nothing dropped on
//! the way), the Roles grant exactly the calls in `oob::k8s::rbac::CALLS`, the code makes
//! exactly those calls (recorded by the fake API server), and the Deployment's probes, port
//! and config path are what `oob serve` serves and reads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use oob::k8s::rbac::{Call, Scope, CALLS};
use oob::k8s::{Condition, KubeNodeOps, NodeEvent, NodeOps, Taint};
use oob_mocks::kube::FakeApi;
use serde_json::{json, Value};

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Files below `dir` whose name ends in `.ext`, sorted.
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parse into `T` and back: a field the type does not know (a typo) makes them differ.
fn strict<T: serde::de::DeserializeOwned + serde::Serialize>(path: &Path, v: &Value) -> T {
    let typed: T =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(&back, v, "{}: fields lost in parsing", path.display());
    typed
}

#[test]
fn every_manifest_parses_into_its_kubernetes_type() {
    let files = files(&deploy_dir(), "yaml");
    assert!(files.len() >= 20, "{files:?}");
    for path in &files {
        let v = load(path);
        match v["kind"].as_str().unwrap_or_default() {
            "Kustomization" => {
                let ships_crds = v["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r.as_str().unwrap().starts_with("crd-"));
                for r in v["resources"].as_array().unwrap() {
                    let r = path.parent().unwrap().join(r.as_str().unwrap());
                    assert!(
                        r.is_file(),
                        "{} lists a missing {}",
                        path.display(),
                        r.display()
                    );
                    // kubectl resolves every kind before it sends anything: a custom
                    // resource cannot be applied with its CRD (deploy/optional/nhc, after).
                    if ships_crds {
                        assert!(
                            !load(&r)["apiVersion"]
                                .as_str()
                                .unwrap_or_default()
                                .starts_with("oob.dev/"),
                            "{} applies a custom resource with its CRD",
                            r.display()
                        );
                    }
                }
            }
            "Namespace" => drop(strict::<Namespace>(path, &v)),
            "ServiceAccount" => drop(strict::<ServiceAccount>(path, &v)),
            "ClusterRole" => drop(strict::<ClusterRole>(path, &v)),
            "ClusterRoleBinding" => drop(strict::<ClusterRoleBinding>(path, &v)),
            "Role" => drop(strict::<Role>(path, &v)),
            "RoleBinding" => drop(strict::<RoleBinding>(path, &v)),
            "Service" => drop(strict::<Service>(path, &v)),
            "Deployment" => drop(strict::<Deployment>(path, &v)),
            "Secret" => drop(strict::<Secret>(path, &v)),
            "ConfigMap" => {
                let cm = strict::<ConfigMap>(path, &v);
                let toml = &cm.data.unwrap()["oob.toml"];
                oob::config::Config::parse("configmap oob.toml", toml).unwrap();
            }
            "CustomResourceDefinition" => {
                use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
                let crd = strict::<CustomResourceDefinition>(path, &v);
                assert_eq!(crd.spec.group, "oob.dev");
                assert_eq!(
                    crd.metadata.name.as_deref(),
                    Some(format!("{}.oob.dev", crd.spec.names.plural).as_str())
                );
                for version in &crd.spec.versions {
                    let schema = version
                        .schema
                        .as_ref()
                        .unwrap()
                        .open_api_v3_schema
                        .as_ref()
                        .unwrap();
                    assert_eq!(schema.type_.as_deref(), Some("object"));
                }
            }
            // oob's template for Node Healthcheck: spec.template.spec, as NHC requires.
            "OobRemediationTemplate" => {
                assert_eq!(v["apiVersion"], "oob.dev/v1alpha1");
                assert!(v["spec"]["template"]["spec"].is_object(), "{v}");
            }
            // A CRD (Prometheus Operator): no k8s-openapi type; its shape is checked by hand.
            "ServiceMonitor" => {
                assert_eq!(v["apiVersion"], "monitoring.coreos.com/v1");
                assert_eq!(v["spec"]["endpoints"][0]["port"], "metrics");
                assert_eq!(v["spec"]["endpoints"][0]["path"], "/metrics");
            }
            other => panic!("{}: unexpected kind {other:?}", path.display()),
        }
    }
}

/// The calls a set of manifests grants, with whether they come from `optional/`.
fn granted() -> BTreeSet<(String, String, String, String, bool)> {
    let files = files(&deploy_dir(), "yaml");
    let mut out = BTreeSet::new();
    let base = deploy_dir().join("kustomization.yaml");
    let listed: Vec<String> = load(&base)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    for path in files {
        let v = load(&path);
        if for_nhc(&v) {
            continue;
        }
        let optional = path.starts_with(deploy_dir().join("optional"));
        let scope = match v["kind"].as_str() {
            Some("ClusterRole") => "cluster".to_owned(),
            Some("Role") => v["metadata"]["namespace"].as_str().unwrap().to_owned(),
            _ => continue,
        };
        if !optional {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(
                listed.iter().any(|l| l == name),
                "{name} not in the kustomization"
            );
        }
        for rule in v["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        let (g, r, verb) = (
                            g.as_str().unwrap(),
                            r.as_str().unwrap(),
                            verb.as_str().unwrap(),
                        );
                        assert!(
                            g != "*" && r != "*" && verb != "*",
                            "{}: wildcard",
                            path.display()
                        );
                        out.insert((g.into(), r.into(), verb.into(), scope.clone(), optional));
                    }
                }
            }
        }
    }
    out
}

/// A ClusterRole for the medik8s Node Healthcheck Operator (aggregated into its own by the
/// label), not granted to oob.
fn for_nhc(v: &Value) -> bool {
    v["metadata"]["labels"]["rbac.ext-remediation/aggregate-to-ext-remediation"] == "true"
}

fn key(c: &Call) -> (String, String, String, String, bool) {
    let scope = match c.scope {
        Scope::Cluster => "cluster".to_owned(),
        Scope::Namespace(n) => n.to_owned(),
    };
    (
        c.group.into(),
        c.resource.into(),
        c.verb.into(),
        scope,
        c.optional,
    )
}

#[test]
fn the_roles_grant_exactly_the_calls_in_the_table() {
    let table: BTreeSet<_> = CALLS.iter().map(key).collect();
    let granted = granted();
    let missing: Vec<_> = table.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "calls the manifests do not grant: {missing:?}"
    );
    assert!(extra.is_empty(), "grants no call needs: {extra:?}");
    // Every Role and ClusterRole is bound to oob's ServiceAccount, and only to it.
    let files = files(&deploy_dir(), "yaml");
    let roles: BTreeSet<String> = files
        .iter()
        .map(|p| load(p))
        .filter(|v| matches!(v["kind"].as_str(), Some("Role" | "ClusterRole")) && !for_nhc(v))
        .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    let bound: BTreeSet<String> = files
        .iter()
        .map(|p| load(p))
        .filter(|v| {
            matches!(
                v["kind"].as_str(),
                Some("RoleBinding" | "ClusterRoleBinding")
            )
        })
        .map(|v| {
            assert_eq!(
                v["subjects"],
                json!([{"kind": "ServiceAccount", "name": "oob", "namespace": "oob-system"}])
            );
            v["roleRef"]["name"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(roles, bound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_makes_exactly_the_calls_in_the_table() {
    use base64::Engine as _;
    // Every kube::Api is built in src/k8s/: the module this test exercises is all there is.
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources = files(&src, "rs");
    for f in &sources {
        let text = std::fs::read_to_string(f).unwrap();
        if !f.starts_with(src.join("k8s")) {
            assert!(
                !text.contains("Api::all")
                    && !text.contains("Api::namespaced")
                    && !text.contains("Api<"),
                "{} builds a kube::Api outside src/k8s",
                f.display()
            );
        }
    }

    let fixture: Value = serde_json::from_str(include_str!("fixtures/cluster.json")).unwrap();
    let api = FakeApi::start(&fixture, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let ca = oob_mocks::serve::SelfSigned::generate().unwrap();
    api.api.put_configmap(
        "kube-public",
        "cluster-info",
        json!({"kubeconfig": format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: https://10.1.0.10:6443\n    certificate-authority-data: {}\ncontexts: []\nusers: []\n",
            base64::engine::general_purpose::STANDARD.encode(&ca.cert_pem)
        )}),
    );
    // Set-up requests (not oob's) are left out of the count below.
    let created = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/namespaces/oob-system/secrets",
            api.url()
        ))
        .json(&json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bmc-node-1", "namespace": "oob-system"},
            "data": {"password": base64::engine::general_purpose::STANDARD.encode("x")}}))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let skip = api.api.requests().len();

    let client = oob::k8s::client(kube::Config::new(api.url().parse().unwrap())).unwrap();
    let ops = KubeNodeOps::new(client.clone(), "default", "rbac-test");
    ops.get("node-1").await.unwrap();
    ops.set_unschedulable("node-1", true).await.unwrap();
    let taint = Taint {
        key: oob::k8s::OUT_OF_SERVICE.into(),
        value: Some("nodeshutdown".into()),
        effect: "NoExecute".into(),
    };
    ops.set_taint("node-1", oob::k8s::OUT_OF_SERVICE, "NoExecute", Some(taint))
        .await
        .unwrap();
    ops.set_condition(
        "node-1",
        Condition {
            type_: "OobRemediation".into(),
            status: "True".into(),
            reason: "Test".into(),
            message: "m".into(),
        },
    )
    .await
    .unwrap();
    ops.publish(
        "node-1",
        NodeEvent {
            type_: "Normal".into(),
            reason: "Test".into(),
            action: "Test".into(),
            note: "n".into(),
        },
    )
    .await
    .unwrap();
    ops.annotate("node-1", "oob.dev/cordoned", Some("true"))
        .await
        .unwrap();
    ops.cordon_as_oob("node-1", false).await.unwrap();
    oob::k8s::node_annotations(&client).await.unwrap();
    let cache = oob::k8s::cache::NodeCache::start(client.clone());
    assert!(
        cache.ready(Duration::from_secs(10)).await,
        "the node watch lists"
    );
    assert!(cache.get("node-1").is_some());
    // Let the watch request itself reach the server (it follows the list).
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !api.api.requests()[skip..]
        .iter()
        .any(|r| r.query.as_deref().is_some_and(|q| q.contains("watch=true")))
    {
        assert!(std::time::Instant::now() < until, "no watch request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(cache);
    oob::k8s::secret_password(&client, "oob-system/bmc-node-1", false)
        .await
        .unwrap();
    let lock = oob::k8s::lease::LeaseLock::new(
        client.clone(),
        oob::k8s::rbac::OOB_NAMESPACE,
        "oob-leader",
        "rbac-test",
        Duration::from_secs(15),
    );
    assert!(lock.try_acquire().await.unwrap());
    assert!(lock.try_acquire().await.unwrap());
    lock.release().await.unwrap();
    let proof = oob::k8s::drain::VerifiedPowerOff {
        node: "node-1".into(),
        evidence: "test".into(),
    };
    let options = oob::k8s::drain::DrainOptions {
        deadline: Duration::from_secs(2),
        retry_interval: Duration::from_millis(200),
        delete_emptydir_data: true,
        force: Some(proof),
        ..Default::default()
    };
    let report = oob::k8s::drain::drain(&client, "node-1", &options)
        .await
        .unwrap();
    assert!(!report.force_deleted.is_empty(), "{report:?}");
    oob::k8s::join::join_command(&client, Duration::from_secs(600))
        .await
        .unwrap();
    // The replacement: its token read back, labels restored, the control plane listed.
    use oob::k8s::join::Rejoin as _;
    let rejoin = oob::k8s::join::KubeRejoin(client.clone());
    let token = rejoin.mint(Duration::from_secs(600)).await.unwrap();
    assert!(rejoin.token(&token.id).await.unwrap().is_some());
    rejoin
        .restore(
            "node-1",
            &[("example.com/rack".to_owned(), "r1".to_owned())].into(),
            &Default::default(),
        )
        .await
        .unwrap();
    oob::k8s::control_plane_not_ready(&client, "node-1")
        .await
        .unwrap();
    // The per-node lock with the node's medik8s lease: taken, renewed, given back.
    let locks = KubeNodeOps::new(client.clone(), "default", "rbac-test")
        .with_lease_namespace(oob::k8s::rbac::OOB_NAMESPACE);
    let node_lock = oob::k8s::lease::node_lock_name("node-1");
    assert!(locks
        .try_lock(&node_lock, "rbac-test", Duration::from_secs(60))
        .await
        .unwrap());
    assert!(locks
        .try_lock(&node_lock, "rbac-test", Duration::from_secs(60))
        .await
        .unwrap());
    locks.unlock(&node_lock, "rbac-test").await.unwrap();
    // The shared journal: oob's own episode made, its status written twice (the second
    // after a read by name), listed, deleted once the node is healthy.
    use oob::k8s::remediation::Episodes as _;
    let episodes =
        oob::k8s::remediation::KubeEpisodes::new(client.clone(), oob::k8s::rbac::OOB_NAMESPACE);
    episodes
        .update("node-1", "e1", &|s| s.stage = Some("hard-reboot".into()))
        .await
        .unwrap();
    episodes
        .update("node-1", "e1", &|s| s.stage = Some("fenced".into()))
        .await
        .unwrap();
    assert_eq!(episodes.list().await.unwrap().len(), 1);
    episodes
        .delete_own(&oob::k8s::remediation::own_name("node-1", "e1"))
        .await
        .unwrap();
    ops.delete("node-2").await.unwrap();

    let requests = api.api.requests();
    let mut made = BTreeSet::new();
    for r in &requests[skip..] {
        let path = match &r.query {
            Some(q) => format!("{}?{q}", r.path),
            None => r.path.clone(),
        };
        let (call, _) = oob::k8s::rbac::classify(&r.method, &path)
            .unwrap_or_else(|| panic!("{} {} is not in the table", r.method, r.path));
        made.insert(key(&call));
    }
    let table: BTreeSet<_> = CALLS.iter().map(key).collect();
    let unused: Vec<_> = table.difference(&made).collect();
    assert!(
        unused.is_empty(),
        "table entries no code path makes: {unused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_matches_what_oob_serve_serves_and_reads() {
    let dep: Deployment =
        serde_json::from_value(load(&deploy_dir().join("deployment.yaml"))).unwrap();
    assert_eq!(dep.spec_replicas(), 2);
    let pod = dep.spec.unwrap().template.spec.unwrap();
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "serve");
    let config_path = &args[args.iter().position(|a| a == "--config").unwrap() + 1];
    let mounts = c.volume_mounts.clone().unwrap();
    let config_mount = mounts.iter().find(|m| m.name == "config").unwrap();
    assert!(config_path.starts_with(&config_mount.mount_path));
    let cm: ConfigMap = serde_json::from_value(load(&deploy_dir().join("configmap.yaml"))).unwrap();
    let file = Path::new(config_path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let toml = cm.data.unwrap()[file].clone();
    let config = oob::config::Config::parse("sample", &toml).unwrap();
    // The journal and reports live on the writable volume (the root filesystem is read-only).
    let state = mounts.iter().find(|m| m.name == "state").unwrap();
    assert!(config.service.journal.starts_with(&state.mount_path));
    assert!(config.service.reports_dir.starts_with(&state.mount_path));
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let caps = sc.capabilities.clone().unwrap();
    assert!(
        caps.add.is_none(),
        "no capability added (ICMP through ping_group_range)"
    );
    assert_eq!(caps.drop.unwrap(), ["ALL"]);
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    assert!(config.service.leader_election);
    // The port the probes use is the one the sample config listens on.
    let port = c.ports.clone().unwrap()[0].container_port;
    let listen: std::net::SocketAddr = config.service.listen.parse().unwrap();
    assert_eq!(i32::from(listen.port()), port);
    let live = c.liveness_probe.clone().unwrap().http_get.unwrap();
    let ready = c.readiness_probe.clone().unwrap().http_get.unwrap();

    // `oob serve` with the sample config against the fake API server answers those paths
    // (journal and reports moved to a temporary directory, and loopback instead of 0.0.0.0).
    let dir = tempfile::tempdir().unwrap();
    let toml = toml.replace("/var/lib/oob", dir.path().to_str().unwrap());
    let cfg = dir.path().join("oob.toml");
    std::fs::write(&cfg, toml).unwrap();
    let fixture: Value = serde_json::from_str(include_str!("fixtures/cluster.json")).unwrap();
    let api = FakeApi::start(&fixture, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: f\n  cluster:\n    server: {}\ncontexts:\n- name: f\n  context:\n    cluster: f\n    user: f\nusers:\n- name: f\n  user: {{}}\ncurrent-context: f\n", api.url()),
    )
    .unwrap();
    let local = crate::common::free_port();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_oob"))
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--listen", &format!("127.0.0.1:{local}")])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let path_of = |p: &k8s_openapi::api::core::v1::HTTPGetAction| p.path.clone().unwrap();
    for path in [path_of(&live), path_of(&ready), "/metrics".to_owned()] {
        let url = format!("http://127.0.0.1:{local}{path}");
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            match reqwest::get(&url).await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > until => panic!("{url} never answered 200"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let _ = serve.kill().await;
}

trait Replicas {
    fn spec_replicas(&self) -> i32;
}

impl Replicas for Deployment {
    fn spec_replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
}

#[test]
fn the_systemd_unit_verifies_and_keeps_one_capability() {
    let unit = std::fs::read_to_string(deploy_dir().join("systemd/oob.service")).unwrap();
    for line in [
        "DynamicUser=yes",
        "AmbientCapabilities=CAP_NET_RAW",
        "CapabilityBoundingSet=CAP_NET_RAW",
        "StateDirectory=oob",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing");
    }
    // StateDirectory=oob is /var/lib/oob: where the default config keeps journal and reports.
    let defaults = oob::config::ServiceSettings::default();
    assert!(defaults.journal.starts_with("/var/lib/oob"));
    assert!(defaults.reports_dir.starts_with("/var/lib/oob"));
    // systemd's own checker (the test script installs systemd when missing), with the unit
    // pointing at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oob.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/oob", env!("CARGO_BIN_EXE_oob")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}

/// What Pod Security admission refuses under the "restricted" level (which includes
/// "baseline"), per the Pod Security Standards, for one pod spec.
fn restricted_violations(pod: &k8s_openapi::api::core::v1::PodSpec) -> Vec<String> {
    const SAFE_SYSCTLS: &[&str] = &[
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    ];
    let mut v = Vec::new();
    if pod.host_network == Some(true) || pod.host_pid == Some(true) || pod.host_ipc == Some(true) {
        v.push("host namespaces".to_owned());
    }
    let psc = pod.security_context.clone().unwrap_or_default();
    for s in psc.sysctls.clone().unwrap_or_default() {
        if !SAFE_SYSCTLS.contains(&s.name.as_str()) {
            v.push(format!("unsafe sysctl {}", s.name));
        }
    }
    for vol in pod.volumes.clone().unwrap_or_default() {
        let allowed = vol.config_map.is_some()
            || vol.csi.is_some()
            || vol.downward_api.is_some()
            || vol.empty_dir.is_some()
            || vol.ephemeral.is_some()
            || vol.persistent_volume_claim.is_some()
            || vol.projected.is_some()
            || vol.secret.is_some();
        if !allowed {
            v.push(format!("volume {} of a restricted type", vol.name));
        }
    }
    let pod_seccomp = psc.seccomp_profile.as_ref().map(|p| p.type_.clone());
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c.security_context.clone().unwrap_or_default();
        if sc.privileged == Some(true) {
            v.push(format!("{}: privileged", c.name));
        }
        if sc.allow_privilege_escalation != Some(false) {
            v.push(format!("{}: allowPrivilegeEscalation != false", c.name));
        }
        if sc.run_as_non_root.or(psc.run_as_non_root) != Some(true) {
            v.push(format!("{}: runAsNonRoot != true", c.name));
        }
        if sc.run_as_user.or(psc.run_as_user) == Some(0) {
            v.push(format!("{}: runAsUser 0", c.name));
        }
        let seccomp = sc.seccomp_profile.map(|p| p.type_).or(pod_seccomp.clone());
        if !matches!(seccomp.as_deref(), Some("RuntimeDefault" | "Localhost")) {
            v.push(format!(
                "{}: seccompProfile not RuntimeDefault/Localhost",
                c.name
            ));
        }
        let caps = sc.capabilities.unwrap_or_default();
        if !caps.drop.unwrap_or_default().iter().any(|d| d == "ALL") {
            v.push(format!("{}: capabilities not dropping ALL", c.name));
        }
        for add in caps.add.unwrap_or_default() {
            if add != "NET_BIND_SERVICE" {
                v.push(format!("{}: adds capability {add}", c.name));
            }
        }
        for p in c.ports.clone().unwrap_or_default() {
            if p.host_port.is_some_and(|h| h != 0) {
                v.push(format!("{}: hostPort", c.name));
            }
        }
    }
    v
}

#[test]
fn the_deployment_is_admitted_under_pod_security_restricted() {
    let dep: Deployment =
        serde_json::from_value(load(&deploy_dir().join("deployment.yaml"))).unwrap();
    let pod = dep.spec.unwrap().template.spec.unwrap();
    assert_eq!(restricted_violations(&pod), Vec::<String>::new());
    // The namespace enforces it.
    let ns = load(&deploy_dir().join("namespace.yaml"));
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    // The check itself refuses what the old manifest had (NET_RAW: not even "baseline").
    let mut old = pod.clone();
    let sc = old.containers[0].security_context.as_mut().unwrap();
    sc.capabilities.as_mut().unwrap().add = Some(vec!["NET_RAW".into()]);
    assert_eq!(
        restricted_violations(&old),
        ["oob: adds capability NET_RAW"]
    );
}
