//! The kubeadm replacement workflow end to end (`oob node replace`): the fake API server, the
//! mock Redfish BMC, a real sshd on loopback whose PATH holds stand-in `kubeadm`, `etcdctl`,
//! `systemctl` and `df` (each records its arguments; `etcdctl` keeps a member list), and the
//! test in the kubelet's part: once the stand-in `kubeadm join` ran, it registers the Node
//! through the API with a new bootID, as a kubelet does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use oob_mocks::kube::{FakeApi, RunningApi};
use oob_mocks::redfish::RunningMock;
use serde_json::{json, Value};

use crate::common::sshd::Sshd;
use crate::common::{free_port, mock, mock_config, oob, Run};

const CP: &str = "node-role.kubernetes.io/control-plane";

fn uuid(i: usize) -> String {
    format!("2c8a51d0-7f3e-4b9a-8d21-{i:012x}")
}

/// A Node as the API server holds it: Ready or not, on board `uuid`, with a bootID.
fn node(name: &str, uuid: &str, ready: &str, control_plane: bool, boot: &str) -> Value {
    let mut labels = json!({ "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" });
    if control_plane {
        labels[CP] = json!("");
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": { "name": name, "labels": labels, "annotations": {
            "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock" } },
        "spec": {},
        "status": {
            "conditions": [{ "type": "Ready", "status": ready, "reason": "KubeletReady",
                "message": "kubelet status", "lastHeartbeatTime": "2026-11-28T03:00:00Z",
                "lastTransitionTime": "2026-11-28T03:00:00Z" }],
            "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }, { "type": "Hostname", "address": name }],
            "nodeInfo": { "systemUUID": uuid, "bootID": boot, "machineID": "m",
                "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12",
                "containerRuntimeVersion": "containerd://1.7", "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64" }
        }
    })
}

/// The stand-ins' recorded calls, one per line (`kubeadm join …`, `etcdctl … member list …`).
struct Bench {
    api: RunningApi,
    bmc: RunningMock,
    _sshd: Sshd,
    dir: tempfile::TempDir,
    config: PathBuf,
    env: Vec<(String, String)>,
    ca_pem: String,
    kubelet: tokio::task::JoinHandle<()>,
}

const KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(path)
        .status()
        .unwrap();
}

impl Bench {
    /// `machines`: (name, control plane, Ready). Machine i is BMC system i+1. `replacement`
    /// goes into the `[replacement]` table.
    async fn start(machines: &[(&str, bool, &str)], replacement: &str) -> Self {
        Self::start_with(machines, "", "", replacement).await
    }

    /// The same, with lines for the `[service]` and `[policy]` tables.
    async fn start_with(
        machines: &[(&str, bool, &str)],
        service: &str,
        policy: &str,
        replacement: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let bin = d.join("bin");
        let state = d.join("state");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host");
        let rec = state.join("record");
        script(
            &bin.join("kubeadm"),
            &format!(
                "#!/bin/sh\necho \"kubeadm $*\" >> '{rec}'\ncase \"$1\" in\n  init) echo '[upload-certs] Using certificate key:'; echo {KEY} ;;\nesac\nexit 0\n",
                rec = rec.display()
            ),
        );
        // etcdctl with a member list in a file: `member list -w json`, `member remove HEX`.
        let members = state.join("members.json");
        script(
            &bin.join("etcdctl"),
            &format!(
                r#"#!/bin/sh
echo "etcdctl $*" >> '{rec}'
for a in "$@"; do last="$a"; done
case "$*" in
  *"member list"*) cat '{m}' ;;
  *"endpoint health"*) cat '{h}'; if grep -q '"health":false' '{h}'; then echo 'Error: unhealthy cluster' >&2; exit 1; fi ;;
  *"member remove"*) exec python3 -c '
import json, sys
p, hexid = sys.argv[1], sys.argv[2]
d = json.load(open(p))
left = [m for m in d["members"] if format(m["ID"], "x") != hexid]
if len(left) == len(d["members"]):
    sys.stderr.write("Error: etcdserver: member not found\n"); sys.exit(1)
d["members"] = left
json.dump(d, open(p, "w"))
print("Member %s removed from cluster" % hexid)' '{m}' "$last" ;;
  *) exit 1 ;;
esac
"#,
                rec = rec.display(),
                m = members.display(),
                h = state.join("health.json").display()
            ),
        );
        script(
            &bin.join("systemctl"),
            &format!(
                "#!/bin/sh\ngrep -v '^rc=' '{}'\n",
                fixtures.join("systemctl-show-active.txt").display()
            ),
        );
        script(
            &bin.join("df"),
            &format!(
                "#!/bin/sh\ncase \"$1\" in\n  -iP) f='{}' ;;\n  *) f='{}' ;;\nesac\ngrep -v '^rc=' \"$f\"\nexit 1\n",
                fixtures.join("df-iP.txt").display(),
                fixtures.join("df-P.txt").display()
            ),
        );
        let member_list: Vec<Value> = machines
            .iter()
            .enumerate()
            .filter(|(_, m)| m.1)
            .map(|(i, (name, _, _))| {
                json!({"ID": 0x8e9e_05c5_2164_6940_u64 + i as u64, "name": name,
                       "peerURLs": [format!("https://10.0.0.{}:2380", i + 1)],
                       "clientURLs": [format!("https://10.0.0.{}:2379", i + 1)]})
            })
            .collect();
        std::fs::write(
            &members,
            json!({"header": {"cluster_id": 1, "member_id": 2, "raft_term": 3}, "members": member_list})
                .to_string(),
        )
        .unwrap();
        // `endpoint health --cluster -w json`: every member healthy until a test says not.
        let health: Vec<Value> = member_list
            .iter()
            .map(|m| json!({"endpoint": m["clientURLs"][0], "health": true, "took": "1.2ms"}))
            .collect();
        std::fs::write(state.join("health.json"), Value::from(health).to_string()).unwrap();

        let nodes: Vec<Value> = machines
            .iter()
            .enumerate()
            .map(|(i, (name, cp, ready))| node(name, &uuid(i + 1), ready, *cp, "boot-old"))
            .collect();
        let api = FakeApi::start(&json!({ "nodes": nodes }), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let ca = oob_mocks::serve::SelfSigned::generate().unwrap();
        let cluster = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: \"\"\n  cluster:\n    server: https://10.0.0.10:6443\n    certificate-authority-data: {}\ncontexts: []\nusers: []\n",
            base64::engine::general_purpose::STANDARD.encode(&ca.cert_pem)
        );
        api.api.put_configmap(
            "kube-public",
            "cluster-info",
            json!({ "kubeconfig": cluster }),
        );
        let bmc = mock(oob_mocks::redfish::Config {
            systems: machines.len(),
            ..mock_config()
        })
        .await;
        for i in 0..machines.len() {
            bmc.mock.set_identity(
                &format!("/redfish/v1/Systems/{}", i + 1),
                &uuid(i + 1),
                &format!("SN-{i}"),
            );
        }
        let sshd = Sshd::start_with_path(None, free_port(), Some(&bin));
        sshd.wait_ready();
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: t\nusers:\n- name: t\n  user: {{}}\ncurrent-context: t\n",
                api.url()
            ),
        )
        .unwrap();
        std::fs::write(d.join("bmc-password"), crate::common::PASSWORD).unwrap();
        let mut config = format!(
            "[service]\njournal = \"{d}/journal.sqlite\"\nreports_dir = \"{d}/reports\"\n{service}\n\n[policy]\n{policy}\n\n[replacement]\netcdctl = \"etcdctl\"\n{replacement}\n",
            d = d.display()
        );
        for (i, (name, _, _)) in machines.iter().enumerate() {
            config += &format!(
                "\n[[machines]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nbmc = \"{}/redfish/v1/Systems/{}\"\n\
                 credentials = {{ user = \"admin\", password_file = \"{pw}\" }}\n\
                 ssh = {{ user = \"root\", key = \"{}\", host_key = \"{}\", port = {}, poll_hardware = false }}\n",
                bmc.url(),
                i + 1,
                sshd.user_key.display(),
                sshd.host_key_pub,
                sshd.port,
                pw = d.join("bmc-password").display()
            );
        }
        let config_path = d.join("oob.toml");
        std::fs::write(&config_path, config).unwrap();
        let boards = machines
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| ((*name).to_owned(), uuid(i + 1)))
            .collect();
        let kubelet = tokio::spawn(kubelet(api.url(), rec.clone(), boards));
        Self {
            api,
            bmc,
            _sshd: sshd,
            env: vec![("KUBECONFIG".into(), kubeconfig.display().to_string())],
            dir,
            config: config_path,
            ca_pem: ca.cert_pem.clone(),
            kubelet,
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// What the stand-ins were asked, in order.
    fn record(&self) -> Vec<String> {
        std::fs::read_to_string(self.state().join("record"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn count(&self, prefix: &str) -> usize {
        self.record()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    async fn oob(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(extra);
        oob(&all, &env).await
    }

    fn journal(&self) -> oob::remedy::journal::Journal {
        oob::remedy::journal::Journal::open(&self.dir.path().join("journal.sqlite")).unwrap()
    }

    fn timeline(&self, node: &str) -> Vec<String> {
        self.journal()
            .timeline(node, 0)
            .unwrap()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.kubelet.abort();
    }
}

/// The kubelet's part: each `kubeadm join … --node-name 'N'` the stand-in recorded registers
/// Node N (a create, as a kubelet does) Ready, on the board the BMC of machine N reports,
/// with a new bootID; a control-plane join gets kubeadm's control-plane label.
async fn kubelet(url: String, record: PathBuf, boards: Vec<(String, String)>) {
    let client = oob::k8s::client(kube::Config::new(url.parse().unwrap())).unwrap();
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client);
    let mut registered = 0;
    loop {
        let joins: Vec<String> = std::fs::read_to_string(&record)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("kubeadm join"))
            .map(str::to_owned)
            .collect();
        for line in joins.iter().skip(registered) {
            // As the stand-in saw its arguments (the shell removed the quotes).
            let name = line
                .split("--node-name ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .unwrap_or_default();
            let board = boards
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, u)| u.clone())
                .unwrap_or_default();
            let n = node(
                name,
                &board,
                "True",
                line.contains("--control-plane"),
                &format!("boot-new-{registered}"),
            );
            let n = serde_json::from_value(n).unwrap();
            nodes
                .create(&kube::api::PostParams::default(), &n)
                .await
                .unwrap();
        }
        registered = joins.len();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The dead worker of the acceptance: NotReady, cordoned by oob, with people's labels,
/// annotation and taint, and the controller's unreachable taint.
fn dead_worker(api: &FakeApi) {
    api.touch("node-1", |n| {
        n["metadata"]["labels"]["example.com/rack"] = json!("r12");
        n["metadata"]["labels"]["node-role.kubernetes.io/worker"] = json!("");
        n["metadata"]["annotations"]["example.com/owner"] = json!("team-a");
        n["metadata"]["annotations"]["oob.dev/cordoned"] = json!("true");
        n["spec"]["unschedulable"] = json!(true);
        n["spec"]["taints"] = json!([
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
        ]);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_worker_is_replaced_end_to_end_and_each_step_happens_once_across_kills() {
    let b = Bench::start(&[("node-1", false, "Unknown")], "join_timeout_s = 60").await;
    dead_worker(&b.api.api);

    // Dry run: every step with what it would touch, the secrets redacted, nothing changed.
    let run = b
        .oob(
            &["--dry-run", "-o", "json", "node", "replace", "node-1"],
            &[],
        )
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    let steps = run.json()["replaced"]["steps"].as_array().unwrap().clone();
    let join = steps.iter().find(|s| s["step"] == "join").unwrap();
    let line = join["detail"].as_str().unwrap();
    assert!(
        line.contains("kubeadm join '10.0.0.10:6443' --token <redacted>")
            && line.contains(&format!(
                "sha256:{}",
                crate::common::openssl_ca_hash(&b.ca_pem)
            )),
        "{line}"
    );
    assert!(steps
        .iter()
        .all(|s| s["how"] == "dry-run" || s["how"] == "skipped"));
    assert!(
        b.api.api.node("node-1").is_some(),
        "dry run deletes nothing"
    );
    assert!(b.api.api.secret_names("kube-system").is_empty());
    assert!(b.record().is_empty(), "{:?}", b.record());

    // Killed right after each step in turn (abort: no cleanup, like SIGKILL), started again.
    for step in [
        "record",
        "identity",
        "delete-node",
        "token",
        "reset",
        "join",
        "registered",
        "restore",
        "uncordon",
    ] {
        let run = b
            .oob(&["node", "replace", "node-1"], &[("OOB_CRASH_AFTER", step)])
            .await;
        assert_ne!(run.code, 0, "killed after {step}: {}", run.all());
    }
    let run = b
        .oob(&["-o", "json", "node", "replace", "node-1"], &[])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    let doc = run.json();
    let last: Vec<(&str, &str)> = doc["replaced"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["how"].as_str().unwrap()))
        .collect();
    assert!(last.contains(&("join", "journaled")), "{last:?}");
    assert!(last.contains(&("close", "done")), "{last:?}");

    // Each step once: one reset and one join on the machine, one token, the Node deleted
    // once (the new registration is the only one since).
    assert_eq!(b.count("kubeadm reset -f"), 1, "{:?}", b.record());
    assert_eq!(b.count("kubeadm join"), 1, "{:?}", b.record());
    let tokens = b.api.api.secret_names("kube-system");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let journal = b.journal();
    let entries: Vec<_> = journal
        .entries(Some("node-1"))
        .unwrap()
        .into_iter()
        .filter(|e| e.key.contains("/replace-"))
        .collect();
    for step in oob::remedy::replace::STEPS
        .iter()
        .filter(|s| **s != "etcd-member" && **s != "health")
    {
        let mine: Vec<_> = entries
            .iter()
            .filter(|e| e.key.ends_with(&format!("/replace-{step}")))
            .collect();
        assert_eq!(mine.len(), 1, "{step}: {entries:?}");
        assert_eq!(mine[0].outcome.as_deref(), Some("done"), "{step}");
    }

    // The join: a real bootstrap token (the Secret kubeadm would have made) and the CA hash
    // kubeadm computes.
    let join = b
        .record()
        .into_iter()
        .find(|l| l.starts_with("kubeadm join"))
        .unwrap();
    let token = join
        .split("--token ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let (id, secret) = token.split_once('.').unwrap();
    assert_eq!(tokens[0], format!("bootstrap-token-{id}"));
    let stored = b.api.api.secret("kube-system", &tokens[0]).unwrap();
    assert_eq!(stored["type"], "bootstrap.kubernetes.io/token");
    let field = |k: &str| {
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(stored["data"][k].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(field("token-secret"), secret);
    assert_eq!(field("usage-bootstrap-authentication"), "true");
    assert_eq!(
        field("auth-extra-groups"),
        "system:bootstrappers:kubeadm:default-node-token"
    );
    assert!(
        join.contains(&format!(
            "--discovery-token-ca-cert-hash sha256:{}",
            crate::common::openssl_ca_hash(&b.ca_pem)
        )),
        "{join}"
    );
    // The token never reaches the output or the timeline.
    assert!(!run.all().contains(secret));
    let timeline = b.timeline("node-1");
    assert!(!timeline.iter().any(|l| l.contains(secret)), "{timeline:?}");

    // The new Node: people's labels, annotation and taint back; the controller's taint not;
    // uncordoned, and only after the health check.
    let n = b.api.api.node("node-1").unwrap();
    assert_eq!(n["status"]["nodeInfo"]["bootID"], "boot-new-0");
    assert_eq!(n["metadata"]["labels"]["example.com/rack"], "r12");
    assert_eq!(
        n["metadata"]["labels"]["node-role.kubernetes.io/worker"],
        ""
    );
    assert_eq!(n["metadata"]["annotations"]["example.com/owner"], "team-a");
    assert!(
        n["metadata"]["annotations"]
            .get("oob.dev/cordoned")
            .is_none(),
        "{n}"
    );
    let taints: Vec<&str> = n["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap())
        .collect();
    assert_eq!(taints, ["dedicated"]);
    assert_ne!(n["spec"]["unschedulable"], true, "{n}");
    let at = |what: &str| {
        timeline
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("{what} not in {timeline:#?}"))
    };
    assert!(at("cordoned until the health check") < at("health check passed"));
    assert!(at("health check passed") < at("replace: node-1 uncordoned"));
    // The replacement is closed and the fault report has its end; the ladder's stage is the
    // service's to write (none runs here).
    assert!(journal.position("node-1").unwrap().is_none());
    let closed = std::fs::read_dir(b.dir.path().join("reports"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with("-closed.md"))
        .expect("the end of the fault report");
    let text = std::fs::read_to_string(closed.path()).unwrap();
    assert!(text.contains("replaced and rejoined"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_killed_in_flight_is_not_sent_again_and_the_wait_says_so() {
    let b = Bench::start(&[("node-1", false, "False")], "join_timeout_s = 3").await;
    let run = b
        .oob(
            &["node", "replace", "node-1"],
            &[("OOB_CRASH_AFTER", "join-sent")],
        )
        .await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert_eq!(b.count("kubeadm join"), 0);
    let run = b.oob(&["node", "replace", "node-1"], &[]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert_eq!(
        b.count("kubeadm join"),
        0,
        "not sent again: {:?}",
        b.record()
    );
    assert!(
        run.stderr.contains("did not register") && run.stderr.contains("may not have run"),
        "{}",
        run.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_node_of_the_same_name_blocks_the_replacement_with_a_clear_error() {
    let b = Bench::start(&[("node-1", false, "True")], "").await;
    let run = b.oob(&["node", "replace", "node-1"], &[]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("node node-1 is Ready") && run.stderr.contains("kubeadm refuses"),
        "{}",
        run.all()
    );
    assert!(b.api.api.node("node-1").is_some());
    assert!(b.api.api.secret_names("kube-system").is_empty());
    assert!(b.record().is_empty(), "{:?}", b.record());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_node_is_replaced_with_its_etcd_member_removed_first_never_below_quorum() {
    let b = Bench::start(
        &[
            ("cp-1", true, "Unknown"),
            ("cp-2", true, "True"),
            ("cp-3", true, "False"),
        ],
        "join_timeout_s = 60",
    )
    .await;
    // cp-1 dead and cp-3 down too: removing cp-1 would leave one healthy member of two.
    let run = b.oob(&["node", "replace", "cp-1"], &[]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("refusing to remove cp-1's etcd member")
            && run.stderr.contains("quorum needs 2"),
        "{}",
        run.all()
    );
    assert_eq!(b.count("etcdctl member remove"), 0, "{:?}", b.record());
    assert!(b.api.api.node("cp-1").is_some(), "nothing deleted");
    // A second control-plane node is not power-cycled while one is down either.
    let run = b.oob(&["cycle", "cp-2"], &[]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(run.stderr.contains("quorum"), "{}", run.all());
    assert_eq!(
        b.bmc.mock.power_state("/redfish/v1/Systems/2").as_deref(),
        Some("On")
    );

    // cp-3 back: the member is removed on a healthy control-plane node, then the join.
    crate::common::world::set_ready(&b.api.api, "cp-3", "True", None);
    let run = b.oob(&["-o", "json", "node", "replace", "cp-1"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let record = b.record();
    let removed = record
        .iter()
        .position(|l| l.starts_with("etcdctl member remove 8e9e05c521646940"))
        .unwrap_or_else(|| panic!("{record:#?}"));
    let join = record
        .iter()
        .position(|l| l.starts_with("kubeadm join"))
        .unwrap();
    assert!(removed < join, "{record:#?}");
    assert!(
        record[join].contains(&format!("--control-plane --certificate-key {KEY}")),
        "{}",
        record[join]
    );
    let members = std::fs::read_to_string(b.state().join("members.json")).unwrap();
    assert!(
        !members.contains("\"cp-1\"") && members.contains("\"cp-2\""),
        "{members}"
    );
    assert_eq!(b.count("etcdctl member remove"), 1);
    assert_eq!(
        b.api.api.node("cp-1").unwrap()["metadata"]["labels"][CP],
        "",
        "rejoined as control plane"
    );
}

/// A person's `oob cycle` of a control-plane node asks etcd too: every Node Ready, but
/// cp-2's member down (etcdctl says so on the peers): refused, nothing sent; etcd whole: done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_cycle_is_refused_while_etcd_needs_the_nodes_member() {
    let b = Bench::start(
        &[
            ("cp-1", true, "True"),
            ("cp-2", true, "True"),
            ("cp-3", true, "True"),
        ],
        "",
    )
    .await;
    let health = b.state().join("health.json");
    let all = std::fs::read_to_string(&health).unwrap();
    let down = all.replacen(
        r#""endpoint":"https://10.0.0.2:2379","health":true"#,
        r#""endpoint":"https://10.0.0.2:2379","health":false,"error":"context deadline exceeded""#,
        1,
    );
    assert_ne!(down, all, "{all}");
    std::fs::write(&health, &down).unwrap();
    let run = b.oob(&["cycle", "cp-1"], &[]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("etcd member the quorum needs")
            && run.stderr.contains("without this node 1 of 3")
            && run.stderr.contains("context deadline exceeded"),
        "{}",
        run.all()
    );
    assert!(b.count("etcdctl") >= 2, "etcd was asked: {:?}", b.record());
    assert_eq!(
        b.bmc.mock.power_state("/redfish/v1/Systems/1").as_deref(),
        Some("On")
    );
    let resets = || {
        b.bmc
            .mock
            .counters()
            .resets
            .into_iter()
            .filter(|(system, _)| system == "/redfish/v1/Systems/1")
            .map(|(_, kind)| kind)
            .collect::<Vec<_>>()
    };
    assert!(resets().is_empty(), "{:?}", resets());
    std::fs::write(&health, &all).unwrap();
    let run = b.oob(&["cycle", "cp-1"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(resets(), ["ForceOff", "On"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_replaces_a_node_a_person_released_as_repaired() {
    let b = Bench::start_with(
        &[("node-1", false, "Unknown")],
        "listen = \"127.0.0.1:0\"\nleader_election = false\nprobe_interval_ms = 500\nprobe_timeout_ms = 300\nping_count = 1",
        "max_unhealthy_percent = 100\ncooldown_s = 0",
        "enabled = true\njoin_timeout_s = 60",
    )
    .await;
    dead_worker(&b.api.api);
    // Awaiting replacement, as the ladder left it (fenced and reported).
    let since = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    b.journal()
        .save_position(
            "node-1",
            &oob::remedy::journal::Position {
                stage: oob::remedy::stage::Stage::AwaitReplacement { since },
                episode: 1,
                ..Default::default()
            },
        )
        .unwrap();
    let run = b.oob(&["release", "node-1", "--repaired"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        b.api.api.node("node-1").unwrap()["metadata"]["annotations"]["oob.dev/release"],
        "repaired"
    );
    let kubeconfig = PathBuf::from(&b.env[0].1);
    let log = b.dir.path().join("serve.log");
    let mut serve = crate::common::spawn_serve(None, &b.config, &kubeconfig, "oob-e2e", &log);
    let until = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let stage = b.journal().position("node-1").unwrap().map(|p| p.stage);
        if matches!(stage, Some(oob::remedy::stage::Stage::Healthy)) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "not replaced: {stage:?}\n{:#?}\n{}",
            b.timeline("node-1"),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    serve.kill().await.unwrap();
    let timeline = b.timeline("node-1");
    assert!(
        timeline
            .iter()
            .any(|l| l.contains("released as repaired by a person")),
        "{timeline:#?}"
    );
    assert_eq!(b.count("kubeadm join"), 1, "{:?}", b.record());
    assert_eq!(b.count("kubeadm reset -f"), 1);
    let n = b.api.api.node("node-1").unwrap();
    assert_eq!(n["status"]["nodeInfo"]["bootID"], "boot-new-0");
    assert_eq!(n["metadata"]["labels"]["example.com/rack"], "r12");
    assert!(
        n["metadata"]["annotations"]
            .get("oob.dev/release")
            .is_none(),
        "{n}"
    );
    assert_ne!(n["spec"]["unschedulable"], true, "{n}");
}
