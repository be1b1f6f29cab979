//! Configuration parsing, validation and inventory from annotations.

use super::*;

const SAMPLE: &str = r#"
[[machines]]
name = "node-1"
bmc = "redfish+http://127.0.0.1:8000/redfish/v1/Systems/1"
credentials = { user = "admin", password_env = "OOB_TEST_PW_UNSET_1" }
"#;

#[test]
fn a_machine_is_found_by_name_and_unknown_names_list_the_known() {
    let c = Config::parse("t.toml", SAMPLE).unwrap();
    assert_eq!(c.machine("node-1").unwrap().credentials.user, "admin");
    let err = c.machine("node-9").unwrap_err().to_string();
    assert!(err.contains("node-1"), "{err}");
}

#[test]
fn two_password_sources_or_none_are_refused() {
    let both = SAMPLE.replace(
        "password_env = \"OOB_TEST_PW_UNSET_1\"",
        "password_env = \"X\", password_file = \"/f\"",
    );
    assert!(Config::parse("t", &both).is_err());
    let none = SAMPLE.replace(", password_env = \"OOB_TEST_PW_UNSET_1\"", "");
    assert!(Config::parse("t", &none).is_err());
    let typo = SAMPLE.replace("bmc =", "bcm =");
    assert!(matches!(
        Config::parse("t", &typo),
        Err(ConfigError::Parse { .. })
    ));
}

#[test]
fn a_missing_env_password_names_the_variable_not_a_value() {
    let c = Config::parse("t.toml", SAMPLE).unwrap();
    let err = c.machines[0]
        .credentials
        .resolve("node-1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("OOB_TEST_PW_UNSET_1"), "{err}");
}

fn ann(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn nodes_join_the_inventory_by_annotation_and_the_file_wins() {
    let mut c = Config::parse("t.toml", SAMPLE).unwrap();
    c.inventory.bmc_networks = vec!["10.0.0.0/24".parse().unwrap()];
    let good = ann(&[
        (annotations::BMC, "redfish://10.0.0.9/redfish/v1/Systems/1"),
        (annotations::CREDENTIALS, "admin:secret:bmc-node-9"),
        (annotations::SERIAL, "SN9"),
        (annotations::LOCATION, "fra1//r12/U7"),
    ]);
    let nodes = vec![
        ("node-9".to_owned(), good.clone()),
        ("node-1".to_owned(), good.clone()),
        ("plain".to_owned(), ann(&[])),
        (
            "bad".to_owned(),
            ann(&[
                (annotations::BMC, "redfish://10.0.0.8"),
                (annotations::CREDENTIALS, "admin:vault:x"),
            ]),
        ),
    ];
    let problems = c.add_annotated(&nodes);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("vault"));
    assert_eq!(
        c.machines.len(),
        2,
        "node-1 stays the file's, plain is not inventory"
    );
    let m = c.machine("node-9").unwrap();
    assert_eq!(
        m.credentials.password_secret.as_deref(),
        Some("oob-system/bmc-node-9")
    );
    assert!(m.credentials.labelled_secret);
    assert_eq!(m.location.rack.as_deref(), Some("r12"));
    assert_eq!(m.location.room, None);
    assert_eq!(
        c.machine("node-1").unwrap().bmc.to_string(),
        "redfish+http://127.0.0.1:8000/redfish/v1/Systems/1"
    );
}

/// Whoever may annotate a Node must not be able to make oob send a password elsewhere, or
/// read a file, a variable or another namespace's Secret.
#[test]
fn an_annotation_cannot_send_a_password_outside_the_bmc_networks() {
    let mut c = Config::parse("t.toml", SAMPLE).unwrap();
    let with =
        |bmc: &str, creds: &str| ann(&[(annotations::BMC, bmc), (annotations::CREDENTIALS, creds)]);
    let ok = "root:secret:oob-system/bmc";
    let refused = |c: &mut Config, node: &str, a: std::collections::BTreeMap<_, _>| {
        let problems = c.add_annotated(&[(node.to_owned(), a)]);
        assert_eq!(problems.len(), 1, "{node}: {problems:?}");
        assert!(c.machine(node).is_err(), "{node} joined");
        problems[0].clone()
    };
    // No networks listed yet: nothing from annotations.
    let p = refused(&mut c, "n1", with("redfish://10.1.0.5", ok));
    assert!(p.contains("bmc_networks"), "{p}");
    c.inventory.bmc_networks = vec!["10.1.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()];
    let p = refused(&mut c, "n2", with("redfish://192.0.2.1", ok));
    assert!(p.contains("outside"), "{p}");
    let p = refused(&mut c, "n3", with("redfish://bmc.example.net", ok));
    assert!(p.contains("IP address"), "{p}");
    for creds in [
        "root:file:/var/run/secrets/kubernetes.io/serviceaccount/token",
        "root:env:SMTP_PASSWORD",
    ] {
        let p = refused(&mut c, "n4", with("redfish://10.1.0.5", creds));
        assert!(p.contains("only name a Secret"), "{p}");
    }
    let p = refused(
        &mut c,
        "n5",
        with("redfish://10.1.0.5", "root:secret:kube-system/x"),
    );
    assert!(p.contains("oob's namespace"), "{p}");
    // Inside: accepted, IPv6 too.
    assert!(c
        .add_annotated(&[("n6".into(), with("ipmi://[fd00::5]", ok))])
        .is_empty());
    assert!(c
        .add_annotated(&[("n7".into(), with("redfish://10.1.2.3", ok))])
        .is_empty());
    // Switched off: annotations are not read at all.
    c.inventory.from_node_annotations = false;
    assert!(c
        .add_annotated(&[("n8".into(), with("redfish://10.1.2.4", ok))])
        .is_empty());
    assert!(c.machine("n8").is_err());
}

#[test]
fn a_password_file_loses_its_trailing_newline_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pw");
    std::fs::write(&path, " s3cret \n").unwrap();
    let s = read_password("m", None, Some(&path)).unwrap();
    assert_eq!(s.expose(), " s3cret ");
}

#[test]
fn the_runbook_thresholds_and_the_verdict_policy_are_configurable() {
    let c = Config::parse(
        "t.toml",
        &format!(
            "[policy]\nsmart_reallocated_max = 20\nnic_loss_percent_max = 2.5\nnic_error_rate_max = 50\ndark_loss_percent = 80\n{SAMPLE}"
        ),
    )
    .unwrap();
    let h = c.policy.hardware();
    assert_eq!(h.smart.reallocated_sectors, 20);
    assert_eq!(h.nic.loss_percent, 2.5);
    assert_eq!(h.nic.errors_per_s, 50.0);
    assert_eq!(c.policy.verdict().dark_loss_pct, 80.0);
    let d = Config::parse("t.toml", SAMPLE).unwrap().policy;
    assert_eq!(d.hardware(), crate::health::Limits::default());
}

#[test]
fn node_conditions_override_the_default_table_entry_by_entry() {
    use crate::verdict::ConditionClass as C;
    let d = Config::parse("t.toml", SAMPLE).unwrap().policy;
    assert_eq!(d.condition_class("KernelDeadlock"), C::Reboot);
    assert_eq!(d.condition_class("ReadonlyFilesystem"), C::Fault);
    assert_eq!(d.condition_class("MemoryPressure"), C::Warn);
    assert_eq!(d.condition_class("SomethingElse"), C::Ignore);
    let c = Config::parse(
        "t.toml",
        &format!(
            "[policy.node_conditions]\nKernelDeadlock = \"ignore\"\nGPUFault = \"fault\"\n{SAMPLE}"
        ),
    )
    .unwrap()
    .policy;
    assert_eq!(c.condition_class("KernelDeadlock"), C::Ignore);
    assert_eq!(c.condition_class("GPUFault"), C::Fault);
    assert_eq!(
        c.condition_class("ReadonlyFilesystem"),
        C::Fault,
        "the rest stay"
    );
    assert!(Config::parse(
        "t.toml",
        &format!("[policy.node_conditions]\nKernelDeadlock = \"reboot-twice\"\n{SAMPLE}")
    )
    .is_err());
}

#[test]
fn percentages_out_of_range_are_refused() {
    for bad in [
        "dark_loss_percent = 0",
        "dark_loss_percent = 150",
        "nic_loss_percent_max = -1",
        "nic_error_rate_max = nan",
    ] {
        let text = format!("[policy]\n{bad}\n{SAMPLE}");
        assert!(
            matches!(
                Config::parse("t.toml", &text),
                Err(ConfigError::Invalid { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn a_bad_bmc_address_is_refused_when_the_file_loads_with_the_reason() {
    let bad = SAMPLE.replace(
        "redfish+http://127.0.0.1:8000/redfish/v1/Systems/1",
        "redfish://admin:hunter2@10.0.0.5/redfish/v1/Systems/1",
    );
    let err = Config::parse("t.toml", &bad).unwrap_err().to_string();
    assert!(err.contains("credentials in the address"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

const SINKS: &str = r#"
[report]
retry_min_s = "5s"
still_down_after_s = "2h"

[[report.sinks]]
kind = "webhook"
name = "noc-hook"
url = "https://alerts.example.net/api/v2/alerts"
format = "alertmanager"
headers = { X-Team = "dc-ops" }
token = { file = "/run/secrets/hook-token" }

[[report.sinks]]
kind = "smtp"
name = "room-mail"
host = "smtp.example.net"
user = "oob"
password = { secret = "oob-system/smtp", key = "password" }
from = "oob <oob@example.net>"
to = ["noc@example.net"]
routes = [{ site = "fra1", room = "hall-2", to = ["fra1-hall2@example.net"] }]
"#;

#[test]
fn report_sinks_parse_with_their_kind_and_credentials_by_reference() {
    let c = Config::parse("t", SINKS).unwrap();
    assert_eq!(c.report.retry_min_s, 5);
    assert_eq!(c.report.still_down_after_s, 7200);
    assert_eq!(c.report.sinks.len(), 2);
    let SinkSettings::Webhook(w) = &c.report.sinks[0] else {
        panic!("webhook first")
    };
    assert_eq!(w.format, WebhookFormat::Alertmanager);
    let SinkSettings::Smtp(s) = &c.report.sinks[1] else {
        panic!("smtp second")
    };
    assert_eq!((s.tls, s.port()), (SmtpTls::Starttls, 587));
}

#[test]
fn unsafe_or_malformed_sinks_are_refused_with_the_reason() {
    let refused = |from: &str, to: &str, why: &str| {
        let text = SINKS.replacen(from, to, 1);
        let err = Config::parse("t", &text).unwrap_err().to_string();
        assert!(err.contains(why), "{from} → {to}: {err}");
    };
    // A token over plain HTTP to another host, or plain HTTP at all off this host.
    refused(
        "https://alerts.example.net",
        "http://alerts.example.net",
        "plain http only to a loopback",
    );
    refused(
        "https://alerts.example.net",
        "https://user:pw@alerts.example.net",
        "no credentials in the url",
    );
    refused("X-Team", "Authorization", "comes from token");
    refused(
        "token = { file = \"/run/secrets/hook-token\" }",
        "token = { file = \"/f\", env = \"T\" }",
        "exactly one of env, file, secret",
    );
    refused(
        "host = \"smtp.example.net\"",
        "host = \"smtp.example.net\"\ntls = \"none\"",
        "never sent without TLS",
    );
    refused(
        "to = [\"noc@example.net\"]",
        "to = [\"not an address\"]",
        "address",
    );
    refused(
        "to = [\"noc@example.net\"]",
        "to = []",
        "at least one address",
    );
    refused(
        "name = \"room-mail\"",
        "name = \"noc-hook\"",
        "listed twice",
    );
    refused("kind = \"smtp\"", "kind = \"pigeon\"", "pigeon");
    // Plain HTTP to this host (a local relay) is fine without a token.
    let local = SINKS
        .replace("https://alerts.example.net", "http://127.0.0.1:9093")
        .replace("token = { file = \"/run/secrets/hook-token\" }\n", "");
    Config::parse("t", &local).unwrap();
}

/// `oob config check` prints the effective configuration: a chat webhook's URL path and a
/// header's value may be the credential, so neither is printed (nor in `Debug`).
#[test]
fn the_printable_config_hides_webhook_paths_and_header_values() {
    let text = SINKS
        .replace(
            "https://alerts.example.net/api/v2/alerts",
            "https://hooks.example.net/services/T0/B1/s3cr3tpath?sig=s3cr3tquery",
        )
        .replace("X-Team = \"dc-ops\"", "X-Api-Key = \"s3cr3tkey\"");
    let c = Config::parse("t", &text).unwrap();
    let shown = c.redacted();
    let printed = [
        serde_json::to_string(&shown).unwrap(),
        toml::to_string_pretty(&shown).unwrap(),
        format!("{c:?}"),
    ];
    for p in &printed {
        assert!(!p.contains("s3cr3t"), "{p}");
        assert!(p.contains("hooks.example.net"), "{p}");
        assert!(p.contains("X-Api-Key"), "{p}");
    }
    // The real config keeps them.
    let SinkSettings::Webhook(w) = &c.report.sinks[0] else {
        panic!("webhook first")
    };
    assert!(w.url.ends_with("sig=s3cr3tquery"));
}
