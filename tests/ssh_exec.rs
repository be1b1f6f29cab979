//! Command execution over SSH against a real OpenSSH server on loopback.

use std::time::Duration;

use oob::probe::exec::{self, HostKeyPolicy, SshError, SshTarget};

use crate::common::free_port;
use crate::common::sshd::Sshd;

fn target(sshd: &Sshd, policy: HostKeyPolicy) -> SshTarget {
    SshTarget {
        host: "127.0.0.1".into(),
        port: sshd.port,
        user: "root".into(),
        key: sshd.user_key.clone(),
        policy,
        connect_timeout: Duration::from_secs(10),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_returns_stdout_stderr_and_exit_code_with_a_known_host_key() {
    let sshd = Sshd::start(None, free_port());
    sshd.wait_ready();
    let t = target(
        &sshd,
        HostKeyPolicy::KnownHosts(sshd.known_hosts("127.0.0.1")),
    );
    let out = exec::exec(
        &t,
        "echo hello; echo oops >&2; exit 3",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");
    assert_eq!(out.exit_status, Some(3));

    // The command limit is enforced on the host by `timeout` (exit 124).
    let out = exec::exec(&t, "sleep 30", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(out.exit_status, Some(124));

    let pinned =
        russh::keys::parse_public_key_base64(sshd.host_key_pub.split_whitespace().nth(1).unwrap())
            .unwrap();
    let out = exec::exec(
        &target(&sshd, HostKeyPolicy::Pinned(pinned)),
        "true",
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(out.exit_status, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_changed_host_keys_are_refused() {
    let sshd = Sshd::start(None, free_port());
    sshd.wait_ready();
    let empty = sshd.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let err = exec::exec(
        &target(&sshd, HostKeyPolicy::KnownHosts(empty)),
        "true",
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SshError::UnknownHostKey { .. }), "{err}");

    let other = Sshd::start(None, free_port());
    let changed = sshd.dir.path().join("changed_known_hosts");
    std::fs::write(
        &changed,
        format!("[127.0.0.1]:{} {}\n", sshd.port, other.host_key_pub),
    )
    .unwrap();
    let err = exec::exec(
        &target(&sshd, HostKeyPolicy::KnownHosts(changed)),
        "true",
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SshError::ChangedHostKey { .. }), "{err}");

    let wrong =
        russh::keys::parse_public_key_base64(other.host_key_pub.split_whitespace().nth(1).unwrap())
            .unwrap();
    let err = exec::exec(
        &target(&sshd, HostKeyPolicy::Pinned(wrong)),
        "true",
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SshError::ChangedHostKey { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reboot_counts_as_sent_when_the_channel_drops() {
    let sshd = Sshd::start(None, free_port());
    sshd.wait_ready();
    let t = target(
        &sshd,
        HostKeyPolicy::KnownHosts(sshd.known_hosts("127.0.0.1")),
    );
    // Stand-in for `systemctl reboot`: the session's sshd dies under the command.
    assert!(exec::reboot(&t, "kill -9 $PPID; sleep 5").await.unwrap());
    let err = exec::reboot(&t, "echo 'Failed to reboot' >&2; exit 1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Failed to reboot"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_and_nic_are_collected_from_a_host_over_ssh() {
    let sshd = Sshd::start(None, free_port());
    sshd.wait_ready();
    let corpus = crate::common::peers().join("smart-corpus/json");
    // A fake smartctl on the host that answers with real recorded outputs.
    let fake = sshd.dir.path().join("smartctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  *--scan-open*) printf '{{\"devices\":[{{\"name\":\"/dev/sda\",\"type\":\"sat\"}},{{\"name\":\"/dev/nvme0\",\"type\":\"nvme\"}}]}}' ;;\n  \
             *sda*) cat '{}' ;;\n  *nvme0*) cat '{}'; exit 8 ;;\nesac\n",
            corpus.join("scrutiny__smart-megaraid1.json").display(),
            corpus.join("smartctl_exporter__nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json").display()
        ),
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .unwrap();
    let config = sshd.dir.path().join("oob.toml");
    std::fs::write(
        &config,
        format!(
            "[[machines]]\nname = \"node-1\"\nhost = \"127.0.0.1\"\nbmc = \"ipmi://127.0.0.1:1\"\n\
             credentials = {{ user = \"admin\", password_env = \"UNUSED\" }}\n\
             ssh = {{ user = \"root\", key = \"{}\", known_hosts = \"{}\", port = {}, smartctl = \"{}\" }}\n",
            sshd.user_key.display(),
            sshd.known_hosts("127.0.0.1").display(),
            sshd.port,
            fake.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let run = crate::common::oob(&["--config", config, "-o", "json", "smart", "node-1"], &[]).await;
    assert_eq!(run.code, 1, "{}", run.all());
    let devices = run.json()["devices"].as_array().unwrap().clone();
    let names: Vec<&str> = devices
        .iter()
        .map(|d| d["device"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/dev/sda", "/dev/nvme0"]);
    let codes = |i: usize| {
        devices[i]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["code"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert!(
        codes(0).contains(&"smart_reallocated_sectors".to_owned()),
        "{:?}",
        codes(0)
    );
    assert_eq!(devices[1]["overall_health"], "FAILED");
    assert!(
        codes(1).contains(&"nvme_volatile_backup_failed".to_owned()),
        "{:?}",
        codes(1)
    );

    let run = crate::common::oob(&["--config", config, "-o", "json", "nic", "node-1"], &[]).await;
    assert!(run.code == 0 || run.code == 1, "{}", run.all());
    let ifaces = run.json()["interfaces"].as_array().unwrap().clone();
    let lo = ifaces
        .iter()
        .find(|i| i["interface"] == "lo")
        .expect("lo is read from sysfs");
    assert!(lo["counters"]["rx_errors"].is_u64(), "{lo}");
}

/// A stand-in command on the host: records its arguments, prints the recorded real output
/// for them (without the recorder's `rc=N` line) and exits with the recorded status.
fn stand_in(bin: &std::path::Path, name: &str, cases: &[(&str, &str)], log: &std::path::Path) {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/host");
    let mut script = format!(
        "#!/bin/sh\necho \"{name} $*\" >> '{}'\ncase \"$*\" in\n",
        log.display()
    );
    for (pattern, fixture) in cases {
        let f = fixtures.join(fixture);
        script += &format!(
            "  {pattern}) grep -v '^rc=' '{f}'; exit $(sed -n 's/^rc=//p' '{f}') ;;\n",
            f = f.display()
        );
    }
    script += "esac\nexit 1\n";
    let path = bin.join(name);
    std::fs::write(&path, script).unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&path)
        .status()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_runs_the_runbook_checks_over_ssh_and_changes_nothing() {
    let bin = tempfile::tempdir().unwrap();
    let log = bin.path().join("asked");
    // The kubelet stopped, the runtime crash looping, as systemd 252 printed them.
    stand_in(
        bin.path(),
        "systemctl",
        &[
            ("*kubelet.service*", "systemctl-show-stopped.txt"),
            ("*containerd.service*", "systemctl-show-crash-looping.txt"),
        ],
        &log,
    );
    // df as recorded on a real Debian 12 host (87 % used: a warning, not critical), so that
    // the verdict does not depend on how full this machine's own disk happens to be.
    stand_in(
        bin.path(),
        "df",
        &[("-P*", "df-P.txt"), ("-iP*", "df-iP.txt")],
        &bin.path().join("df-asked"),
    );
    let sshd = Sshd::start_with_path(None, free_port(), Some(bin.path()));
    sshd.wait_ready();
    // A real certificate that expires within a day: a warning with its date.
    let cert = sshd.dir.path().join("kubelet-client.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/O=system:nodes/CN=system:node:node-1", "-keyout"])
        .arg(sshd.dir.path().join("key.pem"))
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let config = sshd.dir.path().join("oob.toml");
    std::fs::write(
        &config,
        format!(
            "[[machines]]\nname = \"node-1\"\nhost = \"127.0.0.1\"\nbmc = \"ipmi://127.0.0.1:1\"\n\
             credentials = {{ user = \"admin\", password_env = \"UNUSED\" }}\n\
             ssh = {{ user = \"root\", key = \"{}\", known_hosts = \"{}\", port = {}, checks = {{ kubelet_cert = \"{}\" }} }}\n",
            sshd.user_key.display(),
            sshd.known_hosts("127.0.0.1").display(),
            sshd.port,
            cert.display(),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let run = crate::common::oob(
        &["--config", config, "-o", "json", "diagnose", "node-1"],
        &[],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.all());
    let doc = run.json();
    let codes: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"kubelet_inactive"), "{codes:?}");
    assert!(codes.contains(&"runtime_crash_looping"), "{codes:?}");
    assert!(codes.contains(&"kubelet_cert_expiring"), "{codes:?}");
    assert_eq!(doc["repair"], "restart-runtime", "the runtime first: {doc}");
    assert_eq!(doc["healthy"], false);
    // The commands ran on the host: df (the stand-in) for the kubelet's filesystems, the real
    // /proc for its tasks.
    assert!(
        doc["checks"]["disk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["mount"] == "/" && u["used"] == 82695848),
        "{doc}"
    );
    let df = std::fs::read_to_string(bin.path().join("df-asked")).unwrap();
    assert!(df.lines().any(|l| l.starts_with("df -P / /var")), "{df}");
    assert!(doc["checks"]["pids"][1].as_u64().unwrap() > 0);
    for f in doc["findings"].as_array().unwrap() {
        assert!(f["fix"].is_string(), "every finding says what to do: {f}");
    }
    // Read-only: systemctl was only asked to show.
    let asked = std::fs::read_to_string(&log).unwrap();
    assert_eq!(asked.lines().count(), 2, "{asked}");
    assert!(
        asked.lines().all(|l| l.starts_with("systemctl show -p ")),
        "{asked}"
    );

    // The table names the checks and the fix.
    let run = crate::common::oob(&["--config", config, "diagnose", "node-1"], &[]).await;
    assert!(
        run.stdout.contains("kubelet_inactive") && run.stdout.contains("systemctl restart kubelet"),
        "{}",
        run.all()
    );
    // `oob check` shows them with the rest of the evidence (no BMC here, no cluster).
    let run = crate::common::oob(&["--config", config, "-o", "json", "check", "node-1"], &[]).await;
    let doc = run.json();
    let host: Vec<&str> = doc["host"]["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", run.all()))
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(host.contains(&"kubelet_inactive"), "{host:?}");
    assert_eq!(doc["host"]["repair"], "restart-runtime");
    // Still read-only: only `systemctl show` was asked.
    let asked = std::fs::read_to_string(&log).unwrap();
    assert!(
        asked.lines().all(|l| l.starts_with("systemctl show -p ")),
        "{asked}"
    );
}
