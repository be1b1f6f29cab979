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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_and_nic_from_files_print_the_documented_shapes() {
    let corpus = crate::common::peers();
    let failed =
        corpus.join("smart-corpus/text/linuxhw-ed__NVMe_Crucial_CT500P1SSD8_1AA37AE5B55C.txt");
    let passed = corpus.join("smart-corpus/json/pysmart__nvme_5_issue_46__nvmessd.json");
    let run = oob(
        &[
            "-o",
            "json",
            "smart",
            "--file",
            failed.to_str().unwrap(),
            "--file",
            passed.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 1, "findings are problems: {}", run.all());
    let devices = run.json()["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 2);
    for key in [
        "device",
        "protocol",
        "model",
        "serial",
        "overall_health",
        "findings",
    ] {
        assert!(devices[0].get(key).is_some(), "{key}");
    }
    assert_eq!(
        (
            devices[0]["protocol"].as_str(),
            devices[0]["overall_health"].as_str()
        ),
        (Some("NVMe"), Some("FAILED"))
    );
    let codes: Vec<&str> = devices[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"nvme_reliability_degraded"),
        "critical_warning 0x04: {codes:?}"
    );
    assert_eq!(devices[1]["overall_health"], "PASSED");
    assert!(devices[1]["findings"].as_array().unwrap().is_empty());

    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), "{ not json").unwrap();
    let run = oob(&["smart", "--file", garbage.path().to_str().unwrap()], &[]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("not valid JSON"), "{}", run.stderr);

    let eth = corpus.join("nic-corpus/ethtool/go-ethtool-metrics__i40e__01_int_tp__ethtool-S.txt");
    let run = oob(
        &[
            "-o",
            "json",
            "nic",
            "--file",
            eth.to_str().unwrap(),
            "--previous",
            eth.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "nothing rose: {}", run.all());
    assert_eq!(
        run.json()["interfaces"][0]["counters"]["rx_crc_errors"],
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profiles_dir_adds_and_overrides_profiles_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::write(
        profiles.join("acme.toml"),
        "id = \"acme\"\nname = \"Acme BMC\"\nprotocol = \"redfish\"\n",
    )
    .unwrap();
    std::fs::write(profiles.join("hpe.toml"), "id = \"hpe-ilo\"\nname = \"HPE iLO (site override)\"\nprotocol = \"redfish\"\n[power]\ntimeout_s = 600\n").unwrap();
    let config = dir.path().join("oob.toml");
    std::fs::write(
        &config,
        format!("profiles_dir = \"{}\"\n", profiles.display()),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let run = oob(
        &["--config", config, "-o", "json", "profile", "show", "acme"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.all());
    let run = oob(
        &[
            "--config", config, "-o", "json", "profile", "show", "hpe-ilo",
        ],
        &[],
    )
    .await;
    assert_eq!(
        (
            run.json()["name"].as_str(),
            run.json()["power"]["timeout_s"].as_u64()
        ),
        (Some("HPE iLO (site override)"), Some(600))
    );
}
