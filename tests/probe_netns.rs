//! Probes against hosts that are network namespaces: they really answer ping, really run sshd,
//! and really go dark when their link goes down.

use crate::common::netns::Link;
use crate::common::oob_in;
use crate::common::sshd::Sshd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_up_answers_and_goes_dark_when_its_link_drops() {
    let link = Link::new();
    let host = link.host_ip();
    let args = [
        "-o",
        "json",
        "probe",
        host.as_str(),
        "--count",
        "3",
        "--interval-ms",
        "50",
        "--timeout-ms",
        "500",
        "--no-ssh",
    ];
    let run = oob_in(&link.monitor.name, &args).await;
    assert_eq!(run.code, 0, "{}", run.all());
    let ping = run.json()["targets"][0]["ping"].clone();
    assert_eq!(
        (
            ping["sent"].as_u64(),
            ping["received"].as_u64(),
            ping["loss_pct"].as_f64()
        ),
        (Some(3), Some(3), Some(0.0))
    );
    // Measured from right before the send: a veth round trip is tens of microseconds (the
    // figure taken after the send read under 5 µs, printed as 0.00 ms).
    assert!(
        ping["rtt_ms_min"].as_f64().is_some_and(|ms| ms >= 0.01),
        "{ping}"
    );

    link.host_down();
    let run = oob_in(&link.monitor.name, &args).await;
    assert_eq!(run.code, 1, "a dark host is a problem found: {}", run.all());
    let ping = run.json()["targets"][0]["ping"].clone();
    assert_eq!(
        (ping["received"].as_u64(), ping["loss_pct"].as_f64()),
        (Some(0), Some(100.0))
    );

    link.host_up();
    let run = oob_in(&link.monitor.name, &args).await;
    assert_eq!(
        run.json()["targets"][0]["ping"]["received"],
        3,
        "back: {}",
        run.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_namespace_addresses_in_one_call() {
    let link = Link::new();
    let addrs = link.add_host_addresses(500);
    let mut args = vec![
        "-o",
        "json",
        "probe",
        "--count",
        "1",
        "--timeout-ms",
        "2000",
        "--no-ssh",
    ];
    args.extend(addrs.iter().map(String::as_str));
    let run = oob_in(&link.monitor.name, &args).await;
    assert_eq!(run.code, 0, "{}", &run.stderr);
    let targets = run.json()["targets"].as_array().unwrap().clone();
    assert_eq!(targets.len(), 500);
    for (t, a) in targets.iter().zip(&addrs) {
        assert_eq!(t["target"], a.as_str(), "input order");
        assert_eq!(t["ping"]["received"], 1, "{a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ssh_banner_is_seen_when_sshd_runs_and_not_after() {
    let link = Link::new();
    let host = link.host_ip();
    let sshd = Sshd::start(Some(&link.host.name), 2222);
    let args = [
        "-o",
        "json",
        "probe",
        host.as_str(),
        "--count",
        "1",
        "--ssh-port",
        "2222",
        "--timeout-ms",
        "2000",
    ];
    let mut banner = None;
    for _ in 0..50 {
        let run = oob_in(&link.monitor.name, &args).await;
        let ssh = run.json()["targets"][0]["ssh"].clone();
        if ssh["reachable"] == true {
            banner = ssh["banner"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let banner = banner.expect("sshd's banner within 5 s");
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner}");
    drop(sshd);
    let run = oob_in(&link.monitor.name, &args).await;
    assert_eq!(run.code, 1, "{}", run.all());
    let ssh = run.json()["targets"][0]["ssh"].clone();
    assert_eq!(ssh["reachable"], false);
    assert!(ssh["error"].as_str().unwrap().contains("refused"), "{ssh}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_privilege_the_error_names_what_is_missing() {
    // As `nobody`: no CAP_NET_RAW, and the default ping_group_range ("1 0") excludes everyone.
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    let out = tokio::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_oob"),
            "probe",
            "127.0.0.1",
            "--no-ssh",
        ])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let low: u32 = range.split_whitespace().next().unwrap().parse().unwrap();
    let high: u32 = range.split_whitespace().nth(1).unwrap().parse().unwrap();
    if (low..=high).contains(&65534) {
        assert!(
            out.status.success(),
            "ping sockets allowed for nobody: {stderr}"
        );
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in ["CAP_NET_RAW", "ping_group_range", "root"] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_user_pings_with_a_wide_ping_group_range_or_cap_net_raw() {
    // ping_group_range is per network namespace: widen it in a namespace of our own only.
    let ns = crate::common::netns::Netns::new("caps");
    let sysctl = |range: &str| {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "sysctl",
                "-q",
                "-w",
                &format!("net.ipv4.ping_group_range={range}"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    let as_nobody = |extra: &[&str]| {
        let mut cmd = std::process::Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &ns.name,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
        cmd.args(extra);
        cmd.args([
            env!("CARGO_BIN_EXE_oob"),
            "-o",
            "json",
            "probe",
            "127.0.0.1",
            "--no-ssh",
            "--count",
            "1",
        ]);
        cmd.output().unwrap()
    };
    sysctl("0 2147483647");
    let out = as_nobody(&[]);
    assert!(
        out.status.success(),
        "datagram ping socket: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sysctl("1 0");
    let out = as_nobody(&["--inh-caps=+net_raw", "--ambient-caps=+net_raw"]);
    assert!(
        out.status.success(),
        "raw socket with CAP_NET_RAW: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["targets"][0]["ping"]["received"], 1);
    let out = as_nobody(&[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "neither: refused with the explanation"
    );
}

/// A host that answered and then went dark: once its neighbour entry fails, the kernel
/// answers our echoes with "destination host unreachable". That error quotes our echo (same
/// identifier and sequence) and must never count as a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_unreachable_errors_are_not_replies() {
    let link = Link::new();
    let host = link.host_ip();
    let up = oob_in(
        &link.monitor.name,
        &[
            "-o",
            "json",
            "probe",
            host.as_str(),
            "--count",
            "2",
            "--no-ssh",
        ],
    )
    .await;
    assert_eq!(
        up.json()["targets"][0]["ping"]["received"],
        2,
        "{}",
        up.all()
    );
    link.host_down();
    let run = oob_in(
        &link.monitor.name,
        &[
            "-o",
            "json",
            "probe",
            host.as_str(),
            "--count",
            "14",
            "--interval-ms",
            "500",
            "--timeout-ms",
            "400",
            "--no-ssh",
        ],
    )
    .await;
    let ping = run.json()["targets"][0]["ping"].clone();
    assert_eq!(
        (ping["sent"].as_u64(), ping["received"].as_u64()),
        (Some(14), Some(0)),
        "a dark host over 7 s (its neighbour entry fails meanwhile): {}",
        run.all()
    );
}
