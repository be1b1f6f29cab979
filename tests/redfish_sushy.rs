//! Against sushy-emulator (independent, stateful, asynchronous power changes).

use crate::common::{oob, oob_bmc, sushy_systems, target, Sushy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_matches_the_emulators_uuids_and_power_status_its_states() {
    let sushy = Sushy::start(false);
    for (name, uuid, power) in sushy_systems() {
        let url = sushy.url(Some(&uuid));
        let run = oob_bmc(&url, &["-o", "json", "identity"]).await;
        assert_eq!(run.code, 0, "{name}: {}", run.all());
        let id = run.json();
        assert_eq!(id["uuid"], uuid.as_str(), "{name}");
        assert_eq!(id["protocol"], "redfish");
        assert_eq!(id["manufacturer"], "Sushy Emulator");
        assert_eq!(id["bmc_firmware"], "1.00");
        assert_eq!(id["profile"], "generic-redfish");

        // By name: sushy redirects /Systems/node-N to the UUID URI.
        let url = sushy.url(Some(&name));
        let run = oob_bmc(&url, &["-o", "json", "power", "status"]).await;
        assert_eq!(run.code, 0, "{name}: {}", run.all());
        assert_eq!(run.json()["power"], power.as_str(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_systems_and_none_named_is_refused_with_the_list() {
    let sushy = Sushy::start(false);
    let url = sushy.url(None);
    let run = oob_bmc(&url, &["power", "status"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    for (_, uuid, _) in sushy_systems() {
        assert!(
            run.stderr.contains(&uuid),
            "lists every system: {}",
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_on_and_cycle_are_verified_by_observed_state() {
    let sushy = Sushy::start(false);
    let (_, uuid, initial) = sushy_systems().remove(1);
    assert_eq!(initial, "On");
    let url = sushy.url(Some(&uuid));
    let act = |verb: &'static str| {
        let args: Vec<String> = [&["-o", "json", "power", verb][..], &target(&url, &[])]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            oob(&args, &[]).await
        }
    };

    let run = act("off").await;
    assert_eq!(run.code, 0, "{}", run.all());
    let j = run.json();
    assert_eq!(
        (
            j["action"].as_str(),
            j["verified"].as_bool(),
            j["power"].as_str()
        ),
        (Some("off"), Some(true), Some("Off"))
    );
    assert_eq!(sushy.power_state(&uuid, false).await, "Off", "sushy agrees");

    let run = act("on").await;
    assert_eq!(run.code, 0, "{}", run.all());
    let j = run.json();
    assert_eq!(
        (j["verified"].as_bool(), j["power"].as_str()),
        (Some(true), Some("On"))
    );
    assert_eq!(sushy.power_state(&uuid, false).await, "On", "sushy agrees");

    // sushy answers PowerCycle with 501 and does not advertise it: cycle is ForceOff,
    // verified Off, then On, verified On.
    let run = act("cycle").await;
    assert_eq!(run.code, 0, "{}", run.all());
    let j = run.json();
    assert_eq!(
        (j["verified"].as_bool(), j["power"].as_str()),
        (Some(true), Some("On"))
    );
    assert!(j["elapsed_ms"].as_u64().is_some());
    assert_eq!(sushy.power_state(&uuid, false).await, "On");

    // Already in state: nothing to do, still verified.
    let run = act("on").await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["verified"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_works_and_a_wrong_password_is_a_clear_auth_error() {
    let sushy = Sushy::start(true);
    let (_, uuid, power) = sushy_systems().remove(0);
    let url = sushy.url(Some(&uuid));
    let args = [
        &["-o", "json", "power", "status"][..],
        &[
            "--bmc",
            &url,
            "--user",
            "admin",
            "--password-env",
            "SUSHY_PW",
        ],
    ]
    .concat();
    let run = oob(&args, &[("SUSHY_PW", "password")]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["power"], power.as_str());
    assert_eq!(sushy.power_state(&uuid, true).await, power);

    let run = oob(&args, &[("SUSHY_PW", "not-the-password")]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("authentication refused"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout on error: {}",
        run.stdout
    );
}

/// sushy-emulator has the older `IndicatorLED`: oob blinks it, reads it back, turns it off;
/// sushy's own resource (read over plain HTTP) says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_locator_led_blinks_and_goes_off_on_the_emulator() {
    let sushy = Sushy::start(false);
    let (_, uuid, _) = sushy_systems().into_iter().next().unwrap();
    let url = sushy.url(Some(&uuid));
    let led = || async {
        let plain = url.replace("redfish+http://", "http://");
        reqwest::Client::new()
            .get(&plain)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["IndicatorLED"]
            .clone()
    };
    let run = oob_bmc(&url, &["-o", "json", "led", "on"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["locator"], "on");
    assert_eq!(led().await, "Blinking");
    let run = oob_bmc(&url, &["-o", "json", "led", "off"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["locator"], "off");
    assert_eq!(led().await, "Off");
    let run = oob_bmc(&url, &["-o", "json", "led", "status"]).await;
    assert_eq!(run.json()["locator"], "off", "{}", run.all());
}
