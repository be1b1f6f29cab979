//! Against every recorded vendor tree in `shared/peers/redfish-mockups`, served over HTTP by
//! the mock (which adds sessions and power state on top of the recorded payloads). Expected
//! values are read from the tree files by the test itself.

use std::path::{Path, PathBuf};

use oob_mocks::redfish::Config;
use serde_json::Value;

use crate::common::{mock, mock_config, oob, oob_bmc, peers, target};

/// (tree, SEL Entries URI the profile or discovery must pick, profile expected, extra args)
const TREES: &[(&str, &str, &str, &[&str])] = &[
    (
        "dmtf-public-rackmount1",
        "/redfish/v1/Systems/437XR1138R2/LogServices/Log1/Entries",
        "generic-redfish",
        &[],
    ),
    (
        "hpe-ilo5-dl325",
        "/redfish/v1/Systems/1/LogServices/IML/Entries",
        "hpe-ilo",
        &[],
    ),
    (
        "intel",
        "/redfish/v1/Systems/QSBP74100021/LogServices/SEL/Entries",
        "generic-redfish",
        &[],
    ),
    (
        "lenovo-xcc-sr650",
        "/redfish/v1/Systems/1/LogServices/StandardLog/Entries",
        "lenovo-xcc",
        &[],
    ),
    (
        "openbmc-stock",
        "/redfish/v1/Systems/system/LogServices/EventLog/Entries",
        "generic-redfish",
        &[],
    ),
    (
        "supermicro-x10",
        "/redfish/v1/Systems/1/LogServices/Log1/Entries",
        "supermicro",
        &["--profile", "supermicro"],
    ),
];

fn tree_dir(name: &str) -> PathBuf {
    peers().join("redfish-mockups").join(name)
}

/// The recorded document at a Redfish URI (tall or short layout).
fn doc(tree: &Path, uri: &str) -> Value {
    let rel = uri.trim_start_matches("/redfish/v1").trim_matches('/');
    let tall = tree.join("redfish/v1");
    let base = if tall.is_dir() {
        tall
    } else {
        tree.to_path_buf()
    };
    let file = base.join(rel).join("index.json");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).expect("recorded JSON")
}

fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_power_and_sel_equal_each_recorded_tree() {
    for (name, entries_uri, profile, extra) in TREES {
        let tree = tree_dir(name);
        let systems = doc(&tree, "/redfish/v1/Systems");
        let system_uri = systems["Members"][0]["@odata.id"]
            .as_str()
            .expect("one system")
            .to_owned();
        let system = doc(&tree, &system_uri);
        let manager_uri = system["Links"]["ManagedBy"][0]["@odata.id"]
            .as_str()
            .expect("manager");
        let manager = doc(&tree, manager_uri);
        let bmc = mock(Config {
            tree: Some(tree.clone()),
            ..mock_config()
        })
        .await;
        let url = bmc.url();

        let run = oob(
            &[&["-o", "json", "identity"][..], &target(&url, extra)].concat(),
            &[],
        )
        .await;
        assert_eq!(run.code, 0, "{name}: {}", run.all());
        let id = run.json();
        assert_eq!(text(&id["uuid"]), text(&system["UUID"]), "{name} uuid");
        assert_eq!(
            text(&id["serial"]),
            text(&system["SerialNumber"]),
            "{name} serial"
        );
        assert_eq!(text(&id["model"]), text(&system["Model"]), "{name} model");
        assert_eq!(
            text(&id["manufacturer"]),
            text(&system["Manufacturer"]),
            "{name} manufacturer"
        );
        assert_eq!(
            text(&id["bios_version"]),
            text(&system["BiosVersion"]),
            "{name} bios"
        );
        assert_eq!(
            text(&id["bmc_firmware"]),
            text(&manager["FirmwareVersion"]),
            "{name} bmc firmware"
        );
        assert_eq!(id["profile"], *profile, "{name} profile");

        let run = oob(
            &[&["-o", "json", "power", "status"][..], &target(&url, extra)].concat(),
            &[],
        )
        .await;
        assert_eq!(run.code, 0, "{name}: {}", run.all());
        assert_eq!(
            text(&run.json()["power"]),
            text(&system["PowerState"]),
            "{name} power"
        );

        let recorded = doc(&tree, entries_uri);
        let recorded = recorded["Members"].as_array().expect("Members");
        let run = oob(
            &[&["-o", "json", "sel"][..], &target(&url, extra)].concat(),
            &[],
        )
        .await;
        assert!(run.code == 0 || run.code == 1, "{name}: {}", run.all());
        let entries = run.json()["entries"].as_array().expect("entries").clone();
        assert_eq!(entries.len(), recorded.len(), "{name} sel count");
        for (got, want) in entries.iter().zip(recorded) {
            assert_eq!(got["id"], want["Id"], "{name} entry id");
            assert_eq!(
                text(&got["message"]),
                text(&want["Message"]).or(Some("")),
                "{name} message"
            );
            assert_eq!(
                text(&got["created"]),
                text(&want["Created"]),
                "{name} created"
            );
        }
        let critical = recorded.iter().any(|e| e["Severity"] == "Critical");
        assert_eq!(
            run.code,
            i32::from(critical),
            "{name}: exit 1 exactly when critical entries"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_actions_use_a_reset_type_the_recorded_system_allows() {
    for (name, _, _, extra) in TREES {
        let tree = tree_dir(name);
        let bmc = mock(Config {
            tree: Some(tree.clone()),
            ..mock_config()
        })
        .await;
        let system = &bmc.mock.systems()[0];
        let initial = bmc.mock.power_state(system).expect("state");
        let (verb, want_type, want_state) = if initial == "On" {
            ("off", "ForceOff", "Off")
        } else {
            ("on", "On", "On")
        };
        let run = oob(
            &[
                &["-o", "json", "power", verb][..],
                &target(&bmc.url(), extra),
            ]
            .concat(),
            &[],
        )
        .await;
        assert_eq!(run.code, 0, "{name}: {}", run.all());
        assert_eq!(run.json()["verified"], true, "{name}");
        assert_eq!(
            bmc.mock.power_state(system).as_deref(),
            Some(want_state),
            "{name}"
        );
        let resets = bmc.mock.counters().resets;
        assert_eq!(
            resets,
            vec![(system.clone(), want_type.to_owned())],
            "{name}: one reset, allowed type"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supermicro_without_a_service_root_gives_a_clear_error_naming_the_fix() {
    let bmc = mock(Config {
        tree: Some(tree_dir("supermicro-x10")),
        ..mock_config()
    })
    .await;
    let run = oob_bmc(&bmc.url(), &["identity"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("service root is null"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--profile supermicro"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sel_clear_prints_the_entries_then_empties_the_log() {
    let bmc = mock(Config {
        tree: Some(tree_dir("dmtf-public-rackmount1")),
        ..mock_config()
    })
    .await;
    let url = bmc.url();
    let args = target(&url, &[]);
    let run = oob(
        &[&["-o", "json", "sel", "--clear"][..], &args].concat(),
        &[],
    )
    .await;
    assert_eq!(
        run.json()["entries"].as_array().map(Vec::len),
        Some(2),
        "{}",
        run.all()
    );
    assert_eq!(run.json()["cleared"], true);
    let run = oob(&[&["-o", "json", "sel"][..], &args].concat(), &[]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["entries"].as_array().map(Vec::len), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paged_log_is_followed_through_next_links_up_to_the_cap() {
    // Lenovo XCC's 1,152-entry event log, served 100 per page.
    let tree = tree_dir("lenovo-xcc-sr650");
    let recorded = doc(
        &tree,
        "/redfish/v1/Systems/1/LogServices/StandardLog/Entries",
    );
    let recorded = recorded["Members"].as_array().unwrap();
    let bmc = mock(Config {
        tree: Some(tree.clone()),
        page_size: Some(100),
        ..mock_config()
    })
    .await;
    let url = bmc.url();
    let run = oob_bmc(&url, &["-o", "json", "sel"]).await;
    let entries = run.json()["entries"].as_array().unwrap().clone();
    assert_eq!(entries.len(), recorded.len(), "{}", run.stderr);
    assert_eq!(
        entries.last().unwrap()["id"],
        recorded.last().unwrap()["Id"]
    );
    let run = oob_bmc(&url, &["-o", "json", "sel", "--max", "250"]).await;
    assert_eq!(
        run.json()["entries"].as_array().unwrap().len(),
        250,
        "the cap holds across pages"
    );
}
