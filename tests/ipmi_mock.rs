//! Against the mock IPMI BMC (suite 17, fault injection). The mock itself is checked with
//! the real ipmitool first, so the client is never tested only against our own server.

use std::net::SocketAddr;
use std::time::Duration;

use oob::bmc::ipmi::{GuidOrder, IpmiBmc, Privilege, SessionConfig};
use oob::bmc::{Bmc, BmcError, PowerState};
use oob::secret::Secret;
use oob_mocks::ipmi::{Config, Faults, MockIpmi, RunningIpmi};

use crate::common::oob;

async fn start() -> RunningIpmi {
    MockIpmi::start(Config::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn ipmitool(
    addr: SocketAddr,
    suite: &str,
    user: &str,
    password: &str,
    args: &[&str],
) -> (bool, String) {
    let out = std::process::Command::new("timeout")
        .args([
            "30",
            "ipmitool",
            "-I",
            "lanplus",
            "-C",
            suite,
            "-H",
            "127.0.0.1",
            "-p",
        ])
        .arg(addr.port().to_string())
        .args([
            "-U",
            user,
            "-P",
            password,
            "-L",
            if user == "operator" {
                "OPERATOR"
            } else {
                "ADMINISTRATOR"
            },
        ])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Short waits: the mock answers in well under a millisecond on loopback; 150 ms leaves room
/// for a loaded CI machine (two cores shared with other tests).
fn config(addr: SocketAddr, suite: u8) -> SessionConfig {
    SessionConfig {
        addr,
        user: "admin".into(),
        password: Secret::new("password"),
        suites: vec![suite],
        privilege: Privilege::Operator,
        attempt_timeout: Duration::from_millis(150),
        attempts: 8,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_speaks_suites_17_and_3_with_the_mock() {
    let bmc = start().await;
    let addr = bmc.addr;
    let result = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for suite in ["17", "3"] {
            seen.push(ipmitool(
                addr,
                suite,
                "admin",
                "password",
                &["chassis", "power", "status"],
            ));
            seen.push(ipmitool(
                addr,
                suite,
                "admin",
                "password",
                &["sel", "elist"],
            ));
        }
        seen.push(ipmitool(
            addr,
            "17",
            "operator",
            "oppass",
            &["chassis", "power", "off"],
        ));
        seen.push(ipmitool(
            addr,
            "17",
            "admin",
            "wrong",
            &["chassis", "power", "status"],
        ));
        seen
    })
    .await
    .unwrap();
    for (ok, out) in &result[..4] {
        assert!(ok, "{out}");
    }
    assert!(
        result[0].1.contains("Chassis Power is on"),
        "{}",
        result[0].1
    );
    assert_eq!(
        result[1]
            .1
            .lines()
            .filter(|l| l.contains(" | Asserted"))
            .count(),
        4,
        "{}",
        result[1].1
    );
    assert!(result[4].0, "operator may power off: {}", result[4].1);
    assert!(!result[5].0, "a wrong password is refused");
    assert_eq!(bmc.mock.counters().chassis_controls, vec![0]);
    assert_eq!(bmc.mock.open_sessions(), 0, "ipmitool closed its sessions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_with_suite_17_reads_and_drives_the_mock() {
    let bmc = start().await;
    let url = bmc.url();
    let base = [
        "--bmc",
        &url,
        "--user",
        "operator",
        "--password-env",
        "PW",
        "--cipher-suite",
        "17",
    ];
    let run = oob(
        &[&["-o", "json", "identity"][..], &base].concat(),
        &[("PW", "oppass")],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        run.json()["uuid"],
        "6f6f622d-6d6f-636b-2d69-706d692d3031",
        "the mock's GUID bytes, RFC 4122 order"
    );
    for (verb, want) in [("off", false), ("on", true), ("cycle", true)] {
        let run = oob(
            &[&["-o", "json", "power", verb][..], &base].concat(),
            &[("PW", "oppass")],
        )
        .await;
        assert_eq!(run.code, 0, "{verb}: {}", run.all());
        assert_eq!(run.json()["verified"], true);
        assert_eq!(bmc.mock.power(), want);
    }
    assert_eq!(
        bmc.mock.counters().chassis_controls,
        vec![0, 1, 0, 1],
        "cycle = off, then on"
    );
    let run = oob(
        &[&["-o", "json", "sel"][..], &base].concat(),
        &[("PW", "oppass")],
    )
    .await;
    let entries = run.json()["entries"].as_array().unwrap().clone();
    let messages: Vec<&str> = entries
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "Failure detected",
            "Uncorrectable ECC",
            "Upper Critical going high",
            "IERR"
        ]
    );
    assert_eq!(
        bmc.mock.open_sessions(),
        0,
        "every invocation closed its session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_status_reads_stay_right_under_loss_duplicates_and_late_replies() {
    let bmc = start().await;
    bmc.mock.set_faults(Faults {
        drop_in: 0.2,
        drop_out: 0.2,
        duplicate: 0.2,
        late: 0.2,
        late_ms: 250,
        ..Faults::default()
    });
    let client = IpmiBmc::with_config(config(bmc.addr, 17), GuidOrder::Rfc4122)
        .await
        .unwrap();
    for i in 0..500 {
        let on = i % 2 == 0;
        bmc.mock.set_power(on);
        let want = if on { PowerState::On } else { PowerState::Off };
        assert_eq!(client.power_state().await.unwrap(), want, "call {i}");
    }
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_garbage_datagrams_are_discarded_not_fatal() {
    let bmc = start().await;
    let client = IpmiBmc::with_config(config(bmc.addr, 17), GuidOrder::Rfc4122)
        .await
        .unwrap();
    bmc.mock.set_faults(Faults {
        truncate: 3,
        garbage: 5,
        ..Faults::default()
    });
    for _ in 0..5 {
        assert_eq!(client.power_state().await.unwrap(), PowerState::On);
    }
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_session_table_is_a_clear_error() {
    let bmc = start().await;
    bmc.mock.set_faults(Faults {
        session_table_full: true,
        ..Faults::default()
    });
    let err = match IpmiBmc::with_config(config(bmc.addr, 17), GuidOrder::Rfc4122).await {
        Err(e) => e,
        Ok(_) => panic!("opened a session in a full table"),
    };
    assert!(matches!(err, BmcError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("session table full"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bmc_reset_mid_session_is_survived_by_reopening() {
    let bmc = start().await;
    let client = IpmiBmc::with_config(config(bmc.addr, 17), GuidOrder::Rfc4122)
        .await
        .unwrap();
    assert_eq!(client.power_state().await.unwrap(), PowerState::On);
    bmc.mock.reset_bmc();
    assert_eq!(client.power_state().await.unwrap(), PowerState::On);
    assert_eq!(bmc.mock.counters().sessions_opened, 2, "re-opened once");
    client.close().await;
    assert_eq!(bmc.mock.open_sessions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_closes_its_session() {
    let bmc = start().await;
    let client = IpmiBmc::with_config(config(bmc.addr, 17), GuidOrder::Rfc4122)
        .await
        .unwrap();
    assert_eq!(bmc.mock.open_sessions(), 1);
    drop(client);
    for _ in 0..150 {
        if bmc.mock.open_sessions() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the session stayed open after the client was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identify_blinks_and_an_empty_sel_reads_as_empty() {
    let bmc = start().await;
    let client = IpmiBmc::with_config(config(bmc.addr, 17), GuidOrder::Rfc4122)
        .await
        .unwrap();
    client.identify(15).await.unwrap();
    client.clear_sel().await.unwrap();
    assert!(client.sel(100).await.unwrap().is_empty());
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_profile_is_detected_from_the_manufacturer_id() {
    let dell = MockIpmi::start(
        Config {
            manufacturer_id: 674,
            ..Config::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let url = dell.url();
    let base = [
        "-o",
        "json",
        "identity",
        "--bmc",
        url.as_str(),
        "--user",
        "admin",
        "--password-env",
        "PW",
    ];
    let run = oob(&base, &[("PW", "password")]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(
        (
            run.json()["profile"].as_str(),
            run.json()["manufacturer"].as_str()
        ),
        (Some("dell-idrac"), Some("Dell"))
    );
    let run = oob(
        &[&base[..], &["--profile", "generic-ipmi"]].concat(),
        &[("PW", "password")],
    )
    .await;
    assert_eq!(
        run.json()["profile"],
        "generic-ipmi",
        "an explicit profile wins"
    );
}

/// FreeIPMI (a second independent client, stricter than ipmitool about session sequence
/// numbers): power status and a power cycle through `ipmipower`, each session closed, no
/// reply of ours discarded by its checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeipmi_ipmipower_reads_and_cycles_the_mock() {
    let bmc = start().await;
    let addr = bmc.addr;
    let run = move |verb: &str| {
        let out = std::process::Command::new("timeout")
            .args(["30", "ipmipower", "-D", "LAN_2_0", "-I", "17"])
            .args(["-h", &format!("127.0.0.1:{}", addr.port())])
            .args([
                "-u", "admin", "-p", "password", "-l", "OPERATOR", "--debug", verb,
            ])
            .output()
            .expect("ipmipower (Debian freeipmi-tools) is installed by scripts/test");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (stat, cycle) = tokio::task::spawn_blocking(move || (run("--stat"), run("--cycle")))
        .await
        .unwrap();
    assert!(stat.0 && stat.1.contains(": on"), "{}", stat.1);
    assert!(cycle.0 && cycle.1.contains(": ok"), "{}", cycle.1);
    assert_eq!(
        bmc.mock.counters().chassis_controls,
        vec![2],
        "one power cycle"
    );
    assert_eq!(bmc.mock.open_sessions(), 0, "FreeIPMI closed its sessions");
    // FreeIPMI checks every reply it gets (session sequence number, authcode…) and says in
    // its debug output which check failed; a failed one is a reply it discarded and waited
    // out (the Close Session reply numbered 0xFFFFFFFF cost ~400 ms a call).
    for (verb, (_, text)) in [("--stat", &stat), ("--cycle", &cycle)] {
        let failed: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("ipmipower_check") && l.contains("failed"))
            .collect();
        assert!(failed.is_empty(), "{verb}: {failed:#?}");
    }
}
