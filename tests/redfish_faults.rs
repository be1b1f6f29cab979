//! Each fault the mock injects gives its documented behaviour: bounded retry, re-login, or a
//! clear error, and never a false `"verified": true`.

use std::time::Duration;

use oob::bmc::power::{self, PowerTiming};
use oob::bmc::profile::Profiles;
use oob::bmc::redfish::{ClientOptions, Credentials, RedfishBmc};
use oob::bmc::{Bmc, BmcError, Endpoint, PowerAction, PowerState};
use oob::secret::Secret;
use oob_mocks::redfish::{Config, Faults, RunningMock};

use crate::common::{mock, mock_config, oob, oob_bmc, PASSWORD, USER};

async fn connect(bmc: &RunningMock, options: ClientOptions) -> Result<RedfishBmc, BmcError> {
    let endpoint = Endpoint::parse(&format!("{}/redfish/v1/Systems/1", bmc.url())).unwrap();
    let creds = Credentials {
        user: USER.into(),
        password: Secret::new(PASSWORD),
    };
    RedfishBmc::connect(
        &endpoint,
        creds,
        options,
        &Profiles::embedded().unwrap(),
        None,
    )
    .await
}

fn fast() -> PowerTiming {
    PowerTiming {
        timeout: Duration::from_secs(5),
        poll: Duration::from_millis(50),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_with_retry_after_is_retried_within_bounds() {
    let bmc = mock(mock_config()).await;
    bmc.mock.set_faults(Faults {
        unavailable: 2,
        retry_after_s: 1,
        ..Faults::default()
    });
    let run = oob_bmc(&bmc.url(), &["-o", "json", "power", "status"]).await;
    assert_eq!(run.code, 0, "two 503s then success: {}", run.all());
    assert_eq!(run.json()["power"], "On");

    bmc.mock.set_faults(Faults {
        unavailable: 10,
        retry_after_s: 1,
        ..Faults::default()
    });
    let run = oob_bmc(&bmc.url(), &["power", "status"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("unavailable (HTTP 503) after 3 attempts"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_bound_is_not_waited_for() {
    let bmc = mock(mock_config()).await;
    let before = bmc.mock.counters().requests;
    bmc.mock.set_faults(Faults {
        unavailable: 10,
        retry_after_s: 3600,
        ..Faults::default()
    });
    let run = oob_bmc(&bmc.url(), &["power", "status"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("HTTP 503"), "{}", run.stderr);
    assert_eq!(
        bmc.mock.counters().requests - before,
        1,
        "gave up at once, no second request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_renewed_once_and_the_call_succeeds() {
    let bmc = mock(mock_config()).await;
    let client = connect(&bmc, ClientOptions::default()).await.unwrap();
    assert_eq!(bmc.mock.counters().logins, 1);
    // The first read is served by the document fetched during discovery; consume it so the
    // next read really goes to the BMC.
    assert_eq!(client.power_state().await.unwrap(), PowerState::On);
    bmc.mock.expire_sessions();
    assert_eq!(client.power_state().await.unwrap(), PowerState::On);
    assert_eq!(
        bmc.mock.counters().logins,
        2,
        "logged in again after the 401"
    );
    client.close().await;
    assert_eq!(bmc.mock.counters().logouts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_an_error_unless_already_in_state() {
    let bmc = mock(mock_config()).await;
    bmc.mock.set_faults(Faults {
        conflict_on_reset: true,
        ..Faults::default()
    });
    let run = oob_bmc(&bmc.url(), &["-o", "json", "power", "off"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("conflict"), "{}", run.stderr);
    assert!(!run.stdout.contains("\"verified\": true"));
    assert_eq!(
        bmc.mock.power_state("/redfish/v1/Systems/1").as_deref(),
        Some("On")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_accepted_but_state_never_changing_is_not_verified() {
    let bmc = mock(mock_config()).await;
    bmc.mock.set_faults(Faults {
        stuck_power: true,
        ..Faults::default()
    });
    let run = oob_bmc(
        &bmc.url(),
        &["-o", "json", "power", "cycle", "--verify-timeout", "2"],
    )
    .await;
    assert_eq!(run.code, 1, "done but not verified: {}", run.all());
    let j = run.json();
    assert_eq!(j["verified"], false);
    assert_eq!(j["power"], "On");
    let resets = bmc.mock.counters().resets;
    assert_eq!(
        resets.len(),
        1,
        "cycle never sends On when Off was not observed: {resets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_clear_error_not_a_panic() {
    let bmc = mock(mock_config()).await;
    bmc.mock.set_faults(Faults {
        malformed: 1,
        ..Faults::default()
    });
    let run = oob_bmc(&bmc.url(), &["power", "status"]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("malformed response"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_read_is_retried_and_a_dropped_reset_is_polled_never_resent() {
    let bmc = mock(mock_config()).await;
    bmc.mock.set_faults(Faults {
        drop: 1,
        ..Faults::default()
    });
    let run = oob_bmc(&bmc.url(), &["-o", "json", "power", "status"]).await;
    assert_eq!(run.code, 0, "GET retried after the drop: {}", run.all());
    assert_eq!(run.json()["power"], "On");

    // The Reset is carried out, but its answer is lost: oob must look, not send it again.
    bmc.mock.set_faults(Faults {
        drop_actions: 1,
        ..Faults::default()
    });
    let run = oob_bmc(&bmc.url(), &["-o", "json", "power", "off"]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["verified"], true);
    assert_eq!(bmc.mock.counters().resets.len(), 1, "sent exactly once");
    assert!(run.stderr.contains("outcome unknown"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_executor_verifies_against_the_real_client() {
    let bmc = mock(mock_config()).await;
    let client = connect(&bmc, ClientOptions::default()).await.unwrap();
    let out = power::execute(&client, PowerAction::Soft, fast())
        .await
        .unwrap();
    assert!(out.verified && out.power == PowerState::Off, "{out:?}");
    let out = power::execute(&client, PowerAction::Reset, fast())
        .await
        .unwrap();
    assert!(out.verified && out.power == PowerState::On, "{out:?}");
    assert_eq!(
        bmc.mock
            .counters()
            .resets
            .iter()
            .map(|(_, t)| t.as_str())
            .collect::<Vec<_>>(),
        ["GracefulShutdown", "On"],
        "reset of an Off host is done as On"
    );
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_beyond_the_request_deadline_is_a_timeout() {
    let bmc = mock(mock_config()).await;
    let options = ClientOptions {
        request_timeout: Duration::from_millis(300),
        attempts: 2,
        ..ClientOptions::default()
    };
    bmc.mock.set_faults(Faults {
        latency_ms: 1000,
        ..Faults::default()
    });
    let err = match connect(&bmc, options).await {
        Err(e) => e,
        Ok(_) => panic!("connected despite every answer arriving after the deadline"),
    };
    assert!(matches!(err, BmcError::Timeout { .. }), "{err}");
    assert!(err.is_retriable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_an_auth_error_on_session_and_basic_services() {
    for sessions in [true, false] {
        let bmc = mock(Config {
            sessions,
            ..mock_config()
        })
        .await;
        let url = bmc.url();
        let args = [
            &["power", "status"][..],
            &["--bmc", &url, "--user", USER, "--password-env", "BAD_PW"],
        ]
        .concat();
        let run = oob(&args, &[("BAD_PW", "wrong-password")]).await;
        assert_eq!(run.code, 2, "{}", run.all());
        assert!(
            run.stderr.contains("authentication refused"),
            "sessions={sessions}: {}",
            run.stderr
        );
    }
}
