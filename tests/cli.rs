//! CLI contract details that need no BMC: profiles, argument errors, exit codes.

use crate::common::oob;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_list_show_and_check() {
    let run = oob(&["-o", "json", "profile", "list"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let ids: Vec<String> = run.json()["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    for id in [
        "generic-redfish",
        "dell-idrac",
        "hpe-ilo",
        "lenovo-xcc",
        "supermicro",
        "openbmc",
        "generic-ipmi",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} in {ids:?}");
    }
    let run = oob(&["-o", "json", "profile", "show", "hpe-ilo"], &[]).await;
    assert_eq!(
        run.json()["redfish"]["sel_log_service"],
        "{system}/LogServices/IML"
    );

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "id = \"acme\"\nname = \"Acme BMC\"\nprotocol = \"redfish\"\n",
    )
    .unwrap();
    let run = oob(&["profile", "check", good.to_str().unwrap()], &[]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "id = \"acme\"\nname = \"Acme\"\nprotocol = \"redfish\"\n[redfish]\nsel_path = \"x\"\n",
    )
    .unwrap();
    let run = oob(&["profile", "check", bad.to_str().unwrap()], &[]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("sel_path"),
        "names the unknown key: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_targets_are_clear_errors_with_exit_2() {
    for (args, needle) in [
        (vec!["power", "status"], "no target"),
        (
            vec![
                "power",
                "status",
                "--bmc",
                "ftp://x",
                "--user",
                "u",
                "--password-env",
                "P",
            ],
            "unknown scheme",
        ),
        (
            vec![
                "power",
                "status",
                "--bmc",
                "redfish://h",
                "--user",
                "u",
                "--password-env",
                "OOB_UNSET_VAR_X",
            ],
            "OOB_UNSET_VAR_X",
        ),
        (vec!["power", "status", "node-1"], "need --config"),
    ] {
        let run = oob(&args, &[]).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.all());
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }
}
