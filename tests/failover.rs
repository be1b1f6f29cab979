//! Cluster mode end to end: two `oob serve` replicas (each with its own local journal, as two
//! pods with their own volumes) against the simulated fleet in another process (its fake API
//! server stores the OobRemediations like a real one); the leader SIGKILLed right after a
//! power request reached a BMC, or between the off and the on of a cycle: the other takes
//! the lease, finds the intent in the API, finishes the episode, and the BMC's received
//! requests prove nothing was sent twice. And the Node Healthcheck contract: an
//! OobRemediation made by hand as NHC makes it drives the ladder, its conditions follow the
//! contract, the timed-out annotation stops it between steps, and oob never deletes it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oob::remedy::journal::Journal;
use serde_json::{json, Value};

use crate::common::simfleet::{resets, start_fleet, wait_for, write_config};
use crate::common::spawn_serve;

/// Fast leases for the test: a standby takes over 3 s after the leader's last renewal.
const FAST_LEASES: &str = "listen = \"127.0.0.1:0\"\nlease_duration_s = 3\nrenew_deadline_s = 2\nretry_period_ms = 250\nnode_lock_s = 4\n";

/// A replica's config: the fleet's, with fast leases and its own journal and reports.
fn replica(dir: &Path, fleet: &Value, name: &str) -> PathBuf {
    let base = write_config(dir, fleet, "");
    let text = std::fs::read_to_string(&base)
        .unwrap()
        .replace("listen = \"127.0.0.1:0\"\n", FAST_LEASES)
        .replace(
            &format!("journal = \"{}/journal.sqlite\"", dir.display()),
            &format!("journal = \"{}/{name}/journal.sqlite\"", dir.display()),
        )
        .replace(
            &format!("reports_dir = \"{}/reports\"", dir.display()),
            &format!("reports_dir = \"{}/{name}/reports\"", dir.display()),
        );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn start(dir: &Path, config: &Path, name: &str) -> tokio::process::Child {
    spawn_serve(
        None,
        config,
        &dir.join("kubeconfig"),
        name,
        &dir.join(format!("{name}.log")),
    )
}

async fn get(url: &str) -> Option<Value> {
    let r = reqwest::get(url).await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Who holds the leader lease now.
async fn leader(api: &str) -> Option<String> {
    get(&format!(
        "{api}/apis/coordination.k8s.io/v1/namespaces/oob-system/leases/oob-leader"
    ))
    .await?["spec"]["holderIdentity"]
        .as_str()
        .map(str::to_owned)
}

async fn remediations(api: &str) -> Vec<Value> {
    get(&format!(
        "{api}/apis/oob.dev/v1alpha1/namespaces/oob-system/oobremediations"
    ))
    .await
    .and_then(|v| v["items"].as_array().cloned())
    .unwrap_or_default()
}

fn recovered(journal: &Path, node: &str) -> bool {
    Journal::open(journal)
        .and_then(|j| j.timeline(node, 0))
        .map(|t| t.iter().any(|(_, w)| w.starts_with("recovered")))
        .unwrap_or(false)
}

/// Kill the leader once `sent` is what node-1's BMC has received; the survivor finishes.
async fn kill_the_leader_after(sent: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fleet = start_fleet(d, 3, &["--hang", "node-1"]);
    let api = fleet.desc["api"].as_str().unwrap().to_owned();
    let (ca, cb) = (replica(d, &fleet.desc, "a"), replica(d, &fleet.desc, "b"));
    let mut a = start(d, &ca, "a");
    wait_for("replica a to lead", Duration::from_secs(20), || {
        let api = api.clone();
        async move { leader(&api).await.as_deref() == Some("a") }
    })
    .await;
    let mut b = start(d, &cb, "b");
    let want: Vec<String> = sent.iter().map(|s| (*s).to_owned()).collect();
    wait_for(
        "the request to reach the BMC",
        Duration::from_secs(60),
        || {
            let (desc, want) = (&fleet.desc, want.clone());
            async move { resets(desc, "node-1").await == want }
        },
    )
    .await;
    // SIGKILL: no step finished, no lease given back.
    a.kill().await.unwrap();
    let at_kill = resets(&fleet.desc, "node-1").await;
    assert_eq!(at_kill, want, "killed right after {sent:?} reached the BMC");
    let intents = Journal::open(&d.join("a/journal.sqlite"))
        .unwrap()
        .in_flight()
        .unwrap();
    // The survivor takes the lease when it expires, adopts the intent, finishes.
    wait_for(
        "replica b to recover node-1",
        Duration::from_secs(90),
        || {
            let j = d.join("b/journal.sqlite");
            async move { recovered(&j, "node-1") }
        },
    )
    .await;
    assert_eq!(leader(&api).await.as_deref(), Some("b"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.kill().await.unwrap();
    assert_eq!(
        resets(&fleet.desc, "node-1").await,
        ["GracefulRestart", "ForceOff", "On"],
        "each request exactly once across the failover (a's intents in flight: {intents:?})"
    );
    let b_journal = Journal::open(&d.join("b/journal.sqlite")).unwrap();
    let timeline = b_journal.timeline("node-1", 0).unwrap();
    assert!(
        timeline
            .iter()
            .any(|(_, w)| w.starts_with("taken over from the cluster")),
        "{timeline:?}"
    );
    // Every action a began is in b's journal with an outcome now.
    let b_entries = b_journal.entries(Some("node-1")).unwrap();
    for key in ["/soft-reboot", "/hard-reboot"] {
        assert!(
            b_entries
                .iter()
                .any(|e| e.key.ends_with(key) && e.outcome.is_some()),
            "{key}: {b_entries:?}"
        );
    }
    // The episode is over: oob's own OobRemediation is gone.
    assert!(remediations(&api).await.is_empty());
    // The other machines were never touched.
    for n in ["node-2", "node-3"] {
        assert!(resets(&fleet.desc, n).await.is_empty(), "{n}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_killed_after_the_soft_reboot_reached_the_bmc_is_finished_by_the_other() {
    kill_the_leader_after(&["GracefulRestart"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_killed_between_the_off_and_the_on_of_a_cycle_is_finished_by_the_other() {
    kill_the_leader_after(&["GracefulRestart", "ForceOff"]).await;
}

/// An OobRemediation as the Node Healthcheck Operator creates it from oob's template.
fn nhc_request(node: &str) -> Value {
    json!({
        "apiVersion": "oob.dev/v1alpha1",
        "kind": "OobRemediation",
        "metadata": {
            "generateName": format!("{node}-"),
            "namespace": "oob-system",
            "annotations": {
                "remediation.medik8s.io/node-name": node,
                "remediation.medik8s.io/template-name": "oob-ladder",
            },
            "labels": {"app.kubernetes.io/part-of": "node-healthcheck-controller"},
        },
        "spec": {"strategy": "Ladder"},
    })
}

fn condition<'a>(cr: &'a Value, type_: &str) -> Option<&'a Value> {
    cr["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_made_as_nhc_makes_it_drives_the_ladder_and_follows_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // node-2 answers and is Ready: only the request says it is unhealthy.
    let fleet = start_fleet(d, 3, &[]);
    let api = fleet.desc["api"].as_str().unwrap().to_owned();
    let config = replica(d, &fleet.desc, "a");
    let mut s = start(d, &config, "a");
    wait_for("replica a to lead", Duration::from_secs(20), || {
        let api = api.clone();
        async move { leader(&api).await.as_deref() == Some("a") }
    })
    .await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!(
            "{api}/apis/oob.dev/v1alpha1/namespaces/oob-system/oobremediations"
        ))
        .json(&nhc_request("node-2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = created["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("node-2-"), "{created}");
    let url = format!("{api}/apis/oob.dev/v1alpha1/namespaces/oob-system/oobremediations/{name}");
    wait_for("Processing=True", Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            get(&url).await.is_some_and(|cr| {
                condition(&cr, "Processing").is_some_and(|c| c["status"] == "True")
                    && condition(&cr, "Succeeded").is_some_and(|c| c["status"] == "Unknown")
            })
        }
    })
    .await;
    // The ladder on node-2: a soft reboot (SSH is not usable here: through the BMC),
    // verified, then Succeeded=True, Processing=False.
    wait_for("Succeeded=True", Duration::from_secs(60), || {
        let url = url.clone();
        async move {
            get(&url).await.is_some_and(|cr| {
                condition(&cr, "Succeeded").is_some_and(|c| c["status"] == "True")
                    && condition(&cr, "Processing").is_some_and(|c| c["status"] == "False")
            })
        }
    })
    .await;
    assert_eq!(resets(&fleet.desc, "node-2").await, ["GracefulRestart"]);
    let cr = get(&url).await.unwrap();
    // The step records are on the request itself, and oob did not delete it (NHC does).
    let steps = cr["status"]["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["key"]
            .as_str()
            .is_some_and(|k| k.ends_with("/soft-reboot"))
            && s["outcome"] == "done"),
        "{cr}"
    );
    assert_eq!(cr["status"]["node"], "node-2");
    for c in cr["status"]["conditions"].as_array().unwrap() {
        for f in ["type", "status", "reason", "message", "lastTransitionTime"] {
            assert!(c[f].is_string(), "{f} in {c}");
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(get(&url).await.is_some(), "oob never deletes NHC's request");
    // Nothing more for a request that succeeded.
    assert_eq!(resets(&fleet.desc, "node-2").await, ["GracefulRestart"]);
    s.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_for_a_hung_node_ends_succeeded_after_the_verified_hard_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fleet = start_fleet(d, 3, &["--hang", "node-1"]);
    let api = fleet.desc["api"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    let list = format!("{api}/apis/oob.dev/v1alpha1/namespaces/oob-system/oobremediations");
    // NHC without multiple-template support: the object is named after the node.
    let mut request = nhc_request("node-1");
    request["metadata"]["name"] = json!("node-1");
    assert!(http
        .post(&list)
        .json(&request)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let url = format!("{list}/node-1");
    let config = replica(d, &fleet.desc, "a");
    let mut s = start(d, &config, "a");
    let seen_processing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    wait_for("Succeeded=True", Duration::from_secs(90), || {
        let url = url.clone();
        let seen = seen_processing.clone();
        async move {
            let Some(cr) = get(&url).await else {
                return false;
            };
            if condition(&cr, "Processing").is_some_and(|c| c["status"] == "True") {
                seen.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            condition(&cr, "Succeeded").is_some_and(|c| c["status"] == "True")
        }
    })
    .await;
    assert!(
        seen_processing.load(std::sync::atomic::Ordering::Relaxed),
        "Processing=True while the ladder ran"
    );
    assert_eq!(
        resets(&fleet.desc, "node-1").await,
        ["GracefulRestart", "ForceOff", "On"]
    );
    let cr = get(&url).await.unwrap();
    assert_eq!(
        condition(&cr, "Processing").unwrap()["status"],
        "False",
        "{cr}"
    );
    let keys: Vec<&str> = cr["status"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(
        keys.iter().any(|k| k.ends_with("/hard-reboot")),
        "the steps are on NHC's object: {keys:?}"
    );
    s.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_timed_out_annotation_stops_the_ladder_between_steps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // node-1 hangs: the soft reboot does nothing, the next step would be the hard cycle.
    let fleet = start_fleet(d, 3, &["--hang", "node-1"]);
    let api = fleet.desc["api"].as_str().unwrap().to_owned();
    let config = replica(d, &fleet.desc, "a");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("soft_reboot_timeout_s = 4", "soft_reboot_timeout_s = 8");
    std::fs::write(&config, text).unwrap();
    let http = reqwest::Client::new();
    let list = format!("{api}/apis/oob.dev/v1alpha1/namespaces/oob-system/oobremediations");
    let mut request = nhc_request("node-1");
    request["metadata"]["name"] = json!("node-1");
    let created = http.post(&list).json(&request).send().await.unwrap();
    assert!(created.status().is_success());
    let url = format!("{list}/node-1");
    let mut s = start(d, &config, "a");
    wait_for("the soft reboot", Duration::from_secs(60), || {
        let desc = &fleet.desc;
        async move { resets(desc, "node-1").await == ["GracefulRestart"] }
    })
    .await;
    // NHC times the remediation out (an Update with the annotation, as NHC does).
    let mut cr = get(&url).await.unwrap();
    cr["metadata"]["annotations"]["remediation.medik8s.io/nhc-timed-out"] =
        json!("2026-11-28T10:00:00Z");
    let put = http.put(&url).json(&cr).send().await.unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);
    wait_for(
        "Processing=False after the time-out",
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                get(&url).await.is_some_and(|cr| {
                    condition(&cr, "Processing").is_some_and(|c| {
                        c["status"] == "False" && c["reason"] == "RemediationStoppedByNHC"
                    }) && condition(&cr, "Succeeded").is_some_and(|c| c["status"] == "False")
                })
            }
        },
    )
    .await;
    // Past the soft reboot's timeout: no hard cycle.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(resets(&fleet.desc, "node-1").await, ["GracefulRestart"]);
    assert!(get(&url).await.is_some());
    s.kill().await.unwrap();
}
