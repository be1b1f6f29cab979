//! No password, session token or Basic credential appears in any output or log, at every
//! log level, on success and on failure.

use base64::Engine as _;
use oob_mocks::redfish::{Config, Faults};

use crate::common::{mock, mock_config, oob, target, PASSWORD, USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_stdout_or_stderr_at_any_log_level() {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let mut checked = 0;
    for sessions in [true, false] {
        let bmc = mock(Config {
            sessions,
            ..mock_config()
        })
        .await;
        let url = bmc.url();
        for level in ["error", "warn", "info", "debug", "trace"] {
            for (args, faults) in [
                (vec!["identity"], Faults::default()),
                (vec!["power", "cycle"], Faults::default()),
                (vec!["sel"], Faults::default()),
                (
                    vec!["power", "status"],
                    Faults {
                        malformed: 1,
                        ..Faults::default()
                    },
                ),
                (
                    vec!["power", "off"],
                    Faults {
                        conflict_on_reset: true,
                        ..Faults::default()
                    },
                ),
            ] {
                bmc.mock.set_faults(faults);
                for format in ["text", "json"] {
                    let run = oob(
                        &[
                            &["--log-format", format, "-o", "json"][..],
                            &args,
                            &target(&url, &[]),
                        ]
                        .concat(),
                        &[("OOB_LOG", level)],
                    )
                    .await;
                    let all = run.all();
                    assert!(
                        !all.contains(PASSWORD),
                        "password leaked at {level} ({args:?}):\n{all}"
                    );
                    assert!(
                        !all.contains(&basic),
                        "basic credential leaked at {level}:\n{all}"
                    );
                    for token in bmc.mock.counters().issued_tokens {
                        assert!(
                            !all.contains(&token),
                            "session token leaked at {level} ({args:?}):\n{all}"
                        );
                    }
                    checked += 1;
                }
            }
        }
        if sessions {
            assert!(
                !bmc.mock.counters().issued_tokens.is_empty(),
                "sessions were used"
            );
        }
    }
    assert_eq!(checked, 100);

    // A BMC whose error pages quote the request's session token and Basic credentials: the
    // page is shown (the operator needs the BMC's words), scrubbed.
    for sessions in [true, false] {
        let bmc = mock(Config {
            sessions,
            ..mock_config()
        })
        .await;
        bmc.mock.set_faults(Faults {
            echo_credentials: true,
            ..Faults::default()
        });
        let missing = format!("{}/redfish/v1/Systems/no-such-system", bmc.url());
        for level in ["error", "trace"] {
            let run = oob(
                &[&["power", "status"][..], &target(&missing, &[])].concat(),
                &[("OOB_LOG", level)],
            )
            .await;
            let all = run.all();
            assert_ne!(run.code, 0, "{all}");
            assert!(
                all.contains("request refused; X-Auth-Token"),
                "the BMC's page is not shown:\n{all}"
            );
            assert!(!all.contains(PASSWORD), "password leaked ({level}):\n{all}");
            assert!(!all.contains(&basic), "basic credential leaked:\n{all}");
            let tokens = bmc.mock.counters().issued_tokens;
            assert_eq!(tokens.is_empty(), !sessions);
            for token in tokens {
                assert!(
                    !all.contains(&token),
                    "session token leaked ({level}):\n{all}"
                );
            }
        }
    }

    // A wrong password is not echoed either, whatever the BMC does with it.
    let bmc = mock(mock_config()).await;
    let run = oob(
        &[
            "power",
            "status",
            "--bmc",
            &bmc.url(),
            "--user",
            USER,
            "--password-env",
            "WRONG",
            "-vvv",
        ],
        &[("WRONG", "Wr0ng-S3cret-zz")],
    )
    .await;
    assert_eq!(run.code, 2);
    assert!(!run.all().contains("Wr0ng-S3cret-zz"), "{}", run.all());
}
