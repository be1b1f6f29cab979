//! The locator (identify) LED, `oob led on|off|status`: on the mock Redfish BMC (both the
//! `LocationIndicatorActive` and the older `IndicatorLED` property, read back over plain HTTP,
//! not through oob), on the mock IPMI BMC (Chassis Identify, its state in Get Chassis
//! Status), against ipmi_sim (its chassis-control log records the identify request), and
//! never on a BMC that answers for another machine.

use oob_mocks::ipmi::{Config as IpmiConfig, MockIpmi};
use oob_mocks::redfish::RunningMock;
use serde_json::Value;

use crate::common::{mock, mock_config, oob, PASSWORD};

/// The system resource as the mock serves it (plain HTTP with Basic auth).
async fn system(bmc: &RunningMock) -> Value {
    reqwest::Client::new()
        .get(format!("http://{}/redfish/v1/Systems/1", bmc.addr))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// An inventory with one machine on `bmc`, whose serial is `serial`.
fn inventory(dir: &std::path::Path, bmc: &RunningMock, serial: &str) -> String {
    let path = dir.join("oob.toml");
    std::fs::write(
        &path,
        format!(
            "[service]\njournal = \"{d}/journal.sqlite\"\nreports_dir = \"{d}/reports\"\n\n\
             [[machines]]\nname = \"node-1\"\nbmc = \"{}/redfish/v1/Systems/1\"\nserial = \"{serial}\"\n\
             credentials = {{ user = \"admin\", password_env = \"OOB_TEST_PW\" }}\n",
            bmc.url(),
            d = dir.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_machines_led_is_lit_after_the_identity_check_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let bmc = mock(mock_config()).await;
    bmc.mock.set_identity(
        "/redfish/v1/Systems/1",
        "7e1a0000-0000-4000-8000-000000000001",
        "SN-LED",
    );
    assert_eq!(system(&bmc).await["LocationIndicatorActive"], false);
    // A BMC that answers for another machine: refused, the LED untouched.
    let wrong = inventory(dir.path(), &bmc, "SN-OTHER");
    let run = oob(&["--config", &wrong, "led", "on", "node-1"], &[]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("identity check failed"),
        "{}",
        run.all()
    );
    assert_eq!(system(&bmc).await["LocationIndicatorActive"], false);
    // The right machine: on, read back; then off.
    let config = inventory(dir.path(), &bmc, "SN-LED");
    let run = oob(
        &["--config", &config, "-o", "json", "led", "on", "node-1"],
        &[],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["locator"], "on (read back: on)");
    assert_eq!(system(&bmc).await["LocationIndicatorActive"], true);
    let run = oob(&["--config", &config, "led", "off", "node-1"], &[]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(system(&bmc).await["LocationIndicatorActive"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_bmc_blinks_its_indicator_led() {
    let bmc = mock(oob_mocks::redfish::Config {
        indicator_led: true,
        ..mock_config()
    })
    .await;
    let url = format!("{}/redfish/v1/Systems/1", bmc.url());
    assert_eq!(system(&bmc).await["IndicatorLED"], "Off");
    let run = crate::common::oob_bmc(&url, &["-o", "json", "led", "on"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["locator"], "on");
    assert_eq!(system(&bmc).await["IndicatorLED"], "Blinking");
    assert!(system(&bmc).await.get("LocationIndicatorActive").is_none());
    let run = crate::common::oob_bmc(&url, &["-o", "json", "led", "off"]).await;
    assert_eq!(run.json()["locator"], "off", "{}", run.all());
    assert_eq!(system(&bmc).await["IndicatorLED"], "Off");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_redfish_bmc_refuses_what_a_real_one_refuses_on_patch() {
    let bmc = mock(mock_config()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/redfish/v1/Systems/1", bmc.addr);
    let patch = |body: Value, tag: Option<&str>| {
        let mut r = client
            .patch(&url)
            .basic_auth("admin", Some(PASSWORD))
            .json(&body);
        if let Some(t) = tag {
            r = r.header("If-Match", t);
        }
        r.send()
    };
    let r = patch(serde_json::json!({"PowerState": "Off"}), None)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("PropertyNotWritable"));
    let r = patch(serde_json::json!({"AssetTag": "x"}), None)
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("PropertyUnknown"));
    let r = patch(serde_json::json!({"LocationIndicatorActive": "yes"}), None)
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("PropertyValueNotInList"));
    let r = patch(
        serde_json::json!({"LocationIndicatorActive": true}),
        Some("W/\"99\""),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 412, "a stale ETag");
    let tag = system(&bmc).await["@odata.etag"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = patch(
        serde_json::json!({"LocationIndicatorActive": true}),
        Some(&tag),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_ne!(
        system(&bmc).await["@odata.etag"],
        tag.as_str(),
        "a new ETag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_ipmi_bmc_identifies_until_turned_off_and_reports_it() {
    let ipmi = MockIpmi::start(IpmiConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("ipmi://{}", ipmi.addr);
    let base = |verb: &'static str| {
        vec![
            "-o",
            "json",
            "led",
            verb,
            "--bmc",
            url.as_str(),
            "--user",
            "admin",
            "--password-env",
            "PW",
        ]
    };
    let run = oob(&base("on"), &[("PW", "password")]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(ipmi.mock.identify(), 2, "Force Identify On");
    assert_eq!(run.json()["locator"], "on");
    let run = oob(&base("off"), &[("PW", "password")]).await;
    assert_eq!(run.json()["locator"], "off", "{}", run.all());
    assert_eq!(ipmi.mock.identify(), 0);
}

/// ipmi_sim runs its chassis-control hook for Chassis Identify (`set identify INTERVAL FORCE`,
/// in its log) but answers 0xFF; ipmitool gets the same answer. oob asks exactly what
/// `ipmitool chassis identify force` asks, and says plainly that the BMC refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmi_sim_is_asked_what_ipmitool_asks_and_its_refusal_is_said() {
    let sim = crate::common::IpmiSim::start();
    let url = sim.url();
    let base = |verb: &'static str| {
        vec![
            "led",
            verb,
            "--bmc",
            url.as_str(),
            "--user",
            "admin",
            "--password-env",
            "PW",
            "--cipher-suite",
            "3",
        ]
    };
    let run = oob(&base("on"), &[("PW", "password")]).await;
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains("Chassis Identify failed with completion code 0xff"),
        "{}",
        run.all()
    );
    let ours: Vec<String> = sim
        .chassis_log()
        .into_iter()
        .filter(|l| l.contains("set identify"))
        .collect();
    assert_eq!(ours, ["set identify 0 1"], "Force Identify On");
    let tool = sim.ipmitool(&["chassis", "identify", "force"]);
    assert!(
        !tool.status.success(),
        "ipmitool is refused the same way: {tool:?}"
    );
    let theirs: Vec<String> = sim
        .chassis_log()
        .into_iter()
        .filter(|l| l.contains("set identify"))
        .collect();
    assert_eq!(
        theirs,
        ["set identify 0 1", "set identify 0 1"],
        "the same request"
    );
    // Status: ipmi_sim's Get Chassis Status has no identify state: unknown, not a guess.
    let run = oob(
        &[&["-o", "json"][..], &base("status")].concat(),
        &[("PW", "password")],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.json()["locator"]
            .as_str()
            .unwrap()
            .starts_with("unknown"),
        "{}",
        run.all()
    );
}
