//! Read commands over several machines: one result per target, in order, errors included.

use oob_mocks::ipmi::{Config as IpmiConfig, MockIpmi};

use crate::common::{free_udp_port, mock, mock_config, oob, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_status_over_a_mixed_fleet_reports_every_target_and_the_dead_one() {
    let mut ipmi = Vec::new();
    for _ in 0..3 {
        ipmi.push(
            MockIpmi::start(IpmiConfig::default(), "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
        );
    }
    ipmi[1].mock.set_power(false);
    let redfish = mock(mock_config()).await;
    let dead = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::new();
    for (i, b) in ipmi.iter().enumerate() {
        toml += &format!("[[machines]]\nname = \"ipmi-{i}\"\nbmc = \"{}\"\ncredentials = {{ user = \"admin\", password_env = \"IPMI_PW\" }}\n\n", b.url());
    }
    toml += &format!("[[machines]]\nname = \"redfish-0\"\nbmc = \"{}/redfish/v1/Systems/1\"\ncredentials = {{ user = \"admin\", password_env = \"OOB_TEST_PW\" }}\n\n", redfish.url());
    toml += &format!("[[machines]]\nname = \"dead\"\nbmc = \"ipmi://127.0.0.1:{dead}\"\ncredentials = {{ user = \"admin\", password_env = \"IPMI_PW\" }}\n");
    let config = dir.path().join("oob.toml");
    std::fs::write(&config, toml).unwrap();
    let config = config.to_str().unwrap();

    let run = oob(
        &[
            "--config",
            config,
            "-o",
            "json",
            "power",
            "status",
            "--all",
            "--deadline",
            "10",
        ],
        &[("IPMI_PW", "password")],
    )
    .await;
    assert_eq!(run.code, 1, "one target failed: {}", run.all());
    let targets = run.json()["targets"].as_array().unwrap().clone();
    let names: Vec<&str> = targets
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ipmi-0", "ipmi-1", "ipmi-2", "redfish-0", "dead"],
        "input order"
    );
    let power: Vec<Option<&str>> = targets.iter().map(|t| t["power"].as_str()).collect();
    assert_eq!(
        power,
        [Some("On"), Some("Off"), Some("On"), Some("On"), None]
    );
    assert!(
        targets[4]["error"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{}",
        targets[4]
    );

    let run = oob(
        &["--config", config, "power", "status", "ipmi-1", "redfish-0"],
        &[("IPMI_PW", "password")],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("ipmi-1") && run.stdout.contains("Off"),
        "{}",
        run.stdout
    );

    let run = oob(
        &["--config", config, "power", "off", "ipmi-0", "ipmi-2"],
        &[("IPMI_PW", "password")],
    )
    .await;
    assert_eq!(run.code, 2, "actions take one target: {}", run.all());
    assert!(
        ipmi[0].mock.power() && ipmi[2].mock.power(),
        "nothing was powered off"
    );
    assert!(!run.all().contains(PASSWORD));
    for b in &ipmi {
        assert_eq!(b.mock.open_sessions(), 0);
    }
}
