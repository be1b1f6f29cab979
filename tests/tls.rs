//! TLS policy against the HTTPS mock with a self-signed certificate.

use oob::bmc::redfish::tls::fingerprint_of;
use oob_mocks::redfish::Config;

use crate::common::{mock, mock_config, oob, oob_bmc, target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_is_rejected_by_default_and_accepted_only_as_configured() {
    let bmc = mock(Config {
        tls: true,
        ..mock_config()
    })
    .await;
    let url = bmc.url();
    assert!(url.starts_with("redfish+https://"));
    let cert = bmc.cert.clone().expect("certificate");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("bmc.pem");
    std::fs::write(&ca, &cert.cert_pem).unwrap();
    let ca = ca.to_str().unwrap().to_owned();
    let right = fingerprint_of(&cert.cert_der);
    let wrong = "00:".repeat(31) + "00";
    let status = |extra: Vec<String>| {
        let url = url.clone();
        async move {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            oob(
                &[
                    &["-o", "json", "power", "status"][..],
                    &target(&url, &extra),
                ]
                .concat(),
                &[],
            )
            .await
        }
    };

    let run = status(vec![]).await;
    assert_eq!(
        run.code,
        2,
        "default verification must refuse: {}",
        run.all()
    );
    assert!(run.stderr.contains("TLS failure"), "{}", run.stderr);

    let run = status(vec!["--ca-cert".into(), ca]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["power"], "On");

    let run = status(vec!["--fingerprint".into(), right.clone()]).await;
    assert_eq!(run.code, 0, "{}", run.all());

    let run = status(vec![
        "--fingerprint".into(),
        format!("sha256:{}", right.replace(':', "").to_lowercase()),
    ])
    .await;
    assert_eq!(run.code, 0, "other spelling of the same pin: {}", run.all());

    let run = status(vec!["--fingerprint".into(), wrong]).await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("does not match the pinned"),
        "{}",
        run.stderr
    );

    let run = status(vec!["--insecure".into()]).await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("tls verification disabled"),
        "insecure is logged: {}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_of_another_authority_is_refused() {
    let bmc = mock(Config {
        tls: true,
        ..mock_config()
    })
    .await;
    let other = oob_mocks::serve::SelfSigned::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other.pem");
    std::fs::write(&ca, &other.cert_pem).unwrap();
    let run = oob_bmc(
        &bmc.url(),
        &["power", "status", "--ca-cert", ca.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(run.stderr.contains("TLS failure"), "{}", run.stderr);
}
