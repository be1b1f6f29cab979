//! Against OpenIPMI's `ipmi_sim` (independent BMC simulator), cross-checked with `ipmitool`.

use crate::common::{oob, peers, IpmiSim};

/// `--bmc ipmi://… --user U --password-env OOB_IPMI_PW --cipher-suite 3` (ipmi_sim has no 17).
fn args<'a>(sim: &'a str, user: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = rest.to_vec();
    v.extend_from_slice(&[
        "--bmc",
        sim,
        "--user",
        user,
        "--password-env",
        "OOB_IPMI_PW",
        "--cipher-suite",
        "3",
    ]);
    v
}

async fn oob_ipmi(sim: &IpmiSim, user: &str, password: &str, rest: &[&str]) -> crate::common::Run {
    let url = sim.url();
    oob(&args(&url, user, rest), &[("OOB_IPMI_PW", password)]).await
}

/// The GUID the simulator is configured with (`mc_set_guid` in its .emu file).
fn configured_guid() -> String {
    let emu = std::fs::read_to_string(peers().join("ipmi_sim/oobsim.emu")).unwrap();
    let hex = emu
        .lines()
        .find_map(|l| l.strip_prefix("mc_set_guid 0x20 "))
        .expect("mc_set_guid line")
        .trim()
        .to_owned();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_and_power_status_match_the_simulator() {
    let sim = IpmiSim::start();
    let run = oob_ipmi(&sim, "admin", "password", &["-o", "json", "identity"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let id = run.json();
    assert_eq!(id["protocol"], "ipmi");
    assert_eq!(id["uuid"], configured_guid().as_str());
    assert_eq!(
        id["bmc_firmware"], "2.05",
        "ipmitool mc info: Firmware Revision 2.05"
    );
    assert_eq!(id["profile"], "generic-ipmi");
    let status = run_status(&sim).await;
    let ipmitool = String::from_utf8_lossy(&sim.ipmitool(&["chassis", "power", "status"]).stdout)
        .to_lowercase();
    assert!(
        ipmitool.contains(&format!("is {}", status.to_lowercase())),
        "oob {status}, ipmitool {ipmitool}"
    );
}

async fn run_status(sim: &IpmiSim) -> String {
    let run = oob_ipmi(sim, "admin", "password", &["-o", "json", "power", "status"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    run.json()["power"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_account_drives_every_action_verified_and_logged_by_the_simulator() {
    let sim = IpmiSim::start();
    let table = [
        ("off", "Off", "set power 0"),
        ("on", "On", "set power 1"),
        ("reset", "On", "set reset 1"),
        ("soft", "Off", "set shutdown 1"),
        ("cycle", "On", "set power 1"), // from Off: cycle is just On
        ("cycle", "On", "set power 1"), // from On: verified Off, then On
    ];
    for (verb, want, logged) in table {
        let before = sim.chassis_log().len();
        let run = oob_ipmi(&sim, "operator", "oppass", &["-o", "json", "power", verb]).await;
        assert_eq!(run.code, 0, "{verb}: {}", run.all());
        let j = run.json();
        assert_eq!(
            (j["verified"].as_bool(), j["power"].as_str()),
            (Some(true), Some(want)),
            "{verb}"
        );
        let log = sim.chassis_log();
        assert_eq!(
            log.last().map(String::as_str),
            Some(logged),
            "{verb}: {log:?}"
        );
        assert!(log.len() > before, "{verb} reached the simulator");
    }
    let log = sim.chassis_log();
    let n = log.len();
    assert_eq!(
        &log[n - 2..],
        ["set power 0", "set power 1"],
        "the last cycle was off then on"
    );
}

/// ipmitool's `sel elist` rows: (id, sensor column, event column, direction column).
fn elist(sim: &IpmiSim) -> Vec<(String, String, String, String)> {
    let out = sim.ipmitool(&["sel", "elist"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains('|'))
        .map(|l| {
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            let get = |i: usize| cols.get(i).copied().unwrap_or("").to_owned();
            (get(0), get(3), get(4), get(5))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sel_equals_ipmitool_elist_and_clear_empties_it() {
    let sim = IpmiSim::start();
    // One more event through the simulator's console, as a real BMC would log it.
    let console = sim.port + 1000;
    let add = std::process::Command::new("bash")
        .arg(peers().join("ipmi_sim/simcmd.sh"))
        .arg(console.to_string())
        .arg("sel_add 0x20 0x02 0 0 0 0 0x20 0x00 0x04 0x07 0x05 0x6f 0x00 0xff 0xff")
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");

    let theirs = elist(&sim);
    let run = oob_ipmi(&sim, "admin", "password", &["-o", "json", "sel"]).await;
    assert_eq!(run.code, 1, "critical entries present: {}", run.all());
    let ours = run.json()["entries"].as_array().unwrap().clone();
    assert_eq!(ours.len(), theirs.len(), "count; ipmitool: {theirs:?}");
    assert!(ours.len() >= 6);
    for (o, (id, sensor, event, direction)) in ours.iter().zip(&theirs) {
        assert_eq!(o["id"], id.as_str(), "order");
        let sensor_type = o["sensor_type"].as_str().unwrap();
        if let Some(oem) = sensor_type.strip_prefix("OEM record ") {
            assert_eq!(sensor, &format!("OEM record {oem}"));
            assert_eq!(o["message"], format!("{event} | {direction}").as_str());
            continue;
        }
        let type_name = sensor_type.split(" #").next().unwrap();
        assert!(
            sensor.starts_with(type_name),
            "sensor type: ours {type_name}, ipmitool {sensor}"
        );
        let message = o["message"].as_str().unwrap();
        let (text, deasserted) = match message.strip_suffix(" (deasserted)") {
            Some(t) => (t, true),
            None => (message, false),
        };
        assert_eq!(text, event.as_str(), "event meaning");
        assert_eq!(deasserted, direction == "Deasserted", "direction of {id}");
    }
    assert!(ours
        .iter()
        .any(|e| e["message"] == "IERR" && e["severity"] == "critical"));

    let run = oob_ipmi(
        &sim,
        "operator",
        "oppass",
        &["-o", "json", "sel", "--clear"],
    )
    .await;
    assert_eq!(run.json()["cleared"], true, "{}", run.all());
    assert_eq!(
        run.json()["entries"].as_array().unwrap().len(),
        ours.len(),
        "printed before clearing"
    );
    let after = elist(&sim);
    assert!(
        after.len() <= 1,
        "cleared (a 'log cleared' event may follow): {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_auth_error_without_retransmission() {
    let sim = IpmiSim::start();
    let url = sim.url();
    // Default suites [17, 3]: the simulator ignores 17, oob falls back to 3, then RAKP 2
    // proves the BMC holds a different password.
    let run = oob(
        &[
            "-vv",
            "power",
            "status",
            "--bmc",
            &url,
            "--user",
            "admin",
            "--password-env",
            "PW",
        ],
        &[("PW", "not-the-password")],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("authentication refused"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("what=\"rakp"),
        "no retransmission of RAKP: {}",
        run.stderr
    );
    assert!(!run.all().contains("not-the-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_invocations_leak_no_session() {
    let sim = IpmiSim::start();
    for i in 0..200 {
        let run = oob_ipmi(
            &sim,
            "admin",
            "password",
            &["-o", "json", "power", "status"],
        )
        .await;
        assert_eq!(run.code, 0, "invocation {i}: {}", run.all());
    }
    let out = sim.ipmitool(&["chassis", "power", "status"]);
    assert!(out.status.success(), "ipmitool still connects: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Chassis Power is"));
}
