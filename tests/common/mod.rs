//! Shared helpers: run the `oob` binary, find the shared peers, start and stop sushy-emulator.

#![allow(dead_code)]

pub mod netns;
pub mod simfleet;
pub mod sshd;
pub mod world;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use oob_mocks::redfish::{Config, Mock, RunningMock};

pub const USER: &str = "admin";
/// Distinctive, so a leak is found by a plain substring search.
pub const PASSWORD: &str = "Pa55-oob-S3cret-x9";

/// `../shared/peers` next to the project root.
pub fn peers() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/peers");
    assert!(
        dir.is_dir(),
        "shared peers not found at {} (the tests need ../shared/peers)",
        dir.display()
    );
    dir
}

/// A free loopback TCP port (bound, then released), never one handed out before in this
/// test binary: tests start peers inside their own namespaces, where the root namespace's
/// port is free again, and sushy names its log and state files after the port (two tests
/// on one port would count each other's resets and wipe each other's state).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("loopback address")
}

/// Start the mock Redfish BMC with `PASSWORD` and a short power delay.
pub async fn mock(config: Config) -> RunningMock {
    let config = Config {
        password: PASSWORD.into(),
        ..config
    };
    Mock::start(config, loopback()).await.expect("start mock")
}

pub fn mock_config() -> Config {
    Config {
        power_delay: Duration::from_millis(200),
        ..Config::default()
    }
}

/// What one `oob` run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Run `oob ARGS` with the password in `OOB_TEST_PW` and extra environment, bounded to 3 min.
pub async fn oob(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_oob"));
    cmd.args(args)
        .env("OOB_TEST_PW", PASSWORD)
        .env_remove("OOB_LOG")
        .env_remove("OOB_CONFIG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("oob did not finish within 180 s")
        .expect("run oob");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `--bmc URL --user admin --password-env OOB_TEST_PW` followed by `rest`.
pub fn target<'a>(url: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--bmc",
        url,
        "--user",
        USER,
        "--password-env",
        "OOB_TEST_PW",
    ];
    v.extend_from_slice(rest);
    v
}

/// A running sushy-emulator (`shared/peers/sushy/start.sh`), stopped on drop.
pub struct Sushy {
    pub port: u16,
}

impl Sushy {
    /// Start on a free port; `auth` enables HTTP Basic (admin/password).
    pub fn start(auth: bool) -> Self {
        let port = free_port();
        let script = peers().join("sushy/start.sh");
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(&script).arg(port.to_string());
        if auth {
            cmd.env("SUSHY_AUTH", "1");
        }
        let out = cmd.output().expect("run sushy start.sh");
        assert!(
            out.status.success(),
            "sushy-emulator did not start (the test script installs it):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Self { port }
    }

    pub fn url(&self, system: Option<&str>) -> String {
        match system {
            Some(id) => format!(
                "redfish+http://127.0.0.1:{}/redfish/v1/Systems/{id}",
                self.port
            ),
            None => format!("redfish+http://127.0.0.1:{}", self.port),
        }
    }

    /// PowerState as sushy reports it to a plain HTTP client (independent of oob).
    pub async fn power_state(&self, uuid: &str, auth: bool) -> String {
        let url = format!("http://127.0.0.1:{}/redfish/v1/Systems/{uuid}", self.port);
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut req = client.get(url);
        if auth {
            req = req.basic_auth("admin", Some("password"));
        }
        let v: serde_json::Value = req
            .send()
            .await
            .expect("GET system")
            .json()
            .await
            .expect("system JSON");
        v["PowerState"].as_str().expect("PowerState").to_owned()
    }
}

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(peers().join("sushy/stop.sh"))
            .arg(self.port.to_string())
            .output();
    }
}

/// The fake systems of sushy's `emulator.conf`: (name, uuid, initial power state).
pub fn sushy_systems() -> Vec<(String, String, String)> {
    let conf = std::fs::read_to_string(peers().join("sushy/emulator.conf")).expect("emulator.conf");
    let field = |line: &str, key: &str| -> Option<String> {
        let start = line.find(&format!("'{key}': '"))? + key.len() + 5;
        let end = line[start..].find('\'')? + start;
        Some(line[start..end].to_owned())
    };
    let mut out = Vec::new();
    let lines: Vec<&str> = conf.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let (Some(uuid), Some(name)) = (field(line, "uuid"), field(line, "name")) {
            let power = lines[i..]
                .iter()
                .find_map(|l| field(l, "power_state"))
                .expect("power_state");
            out.push((name, uuid, power));
        }
    }
    assert_eq!(out.len(), 3, "emulator.conf lists three systems");
    out
}

/// A free loopback UDP port (bound, then released).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    s.local_addr().expect("local addr").port()
}

/// A running OpenIPMI `ipmi_sim` (`shared/peers/ipmi_sim/start.sh`), stopped on drop.
pub struct IpmiSim {
    pub port: u16,
    pub state: tempfile::TempDir,
}

impl IpmiSim {
    pub fn start() -> Self {
        let state = tempfile::tempdir().expect("state dir");
        // start.sh refuses a port already bound; retry with another on the rare collision.
        for _ in 0..5 {
            let port = free_udp_port();
            let out = std::process::Command::new("sh")
                .arg(peers().join("ipmi_sim/start.sh"))
                .arg(port.to_string())
                .arg(state.path())
                .env("SOFT_OFF_DELAY", "1")
                .output()
                .expect("run ipmi_sim start.sh");
            if out.status.success() {
                return Self { port, state };
            }
            eprintln!(
                "ipmi_sim start on {port} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        panic!("ipmi_sim did not start (the test script installs openipmi and ipmitool)");
    }

    pub fn url(&self) -> String {
        format!("ipmi://127.0.0.1:{}", self.port)
    }

    /// Lines of the simulator's chassis-control log (`set power 0`, `set reset 1`, …).
    pub fn chassis_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.state.path().join("chassis.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.to_owned()))
            .filter(|l| l.starts_with("set "))
            .collect()
    }

    /// Run ipmitool against the simulator (admin, suite 3) and return stdout.
    pub fn ipmitool(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("timeout")
            .args([
                "30",
                "ipmitool",
                "-I",
                "lanplus",
                "-C",
                "3",
                "-H",
                "127.0.0.1",
                "-p",
            ])
            .arg(self.port.to_string())
            .args(["-U", "admin", "-P", "password"])
            .args(args)
            .output()
            .expect("run ipmitool")
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        let _ = std::process::Command::new("sh")
            .arg(peers().join("ipmi_sim/stop.sh"))
            .arg(self.port.to_string())
            .arg(self.state.path())
            .output();
    }
}

/// Run `oob ARGS` inside network namespace `ns` (bounded to 3 min).
pub async fn oob_in(ns: &str, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new("ip");
    cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_oob")])
        .args(args)
        .env_remove("OOB_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("oob did not finish within 180 s")
        .expect("run ip netns exec");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `oob ARGS --bmc URL --user admin --password-env OOB_TEST_PW`, no extra environment.
pub async fn oob_bmc(url: &str, args: &[&str]) -> Run {
    oob(&[args, &target(url, &[])].concat(), &[]).await
}

/// `oob --config CONFIG serve --holder HOLDER` in the background (inside network namespace
/// `ns` when given), with `KUBECONFIG` and its log appended to `log`; killed on drop.
pub fn spawn_serve(
    ns: Option<&str>,
    config: &std::path::Path,
    kubeconfig: &std::path::Path,
    holder: &str,
    log: &std::path::Path,
) -> tokio::process::Child {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_oob")]);
            c
        }
        None => tokio::process::Command::new(env!("CARGO_BIN_EXE_oob")),
    };
    cmd.arg("--config")
        .arg(config)
        .args(["serve", "--holder", holder])
        .env("KUBECONFIG", kubeconfig)
        .env("OOB_LOG", "info")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("serve log"),
        )
        .kill_on_drop(true)
        .spawn()
        .expect("start oob serve")
}

/// The hex SHA-256 of a PEM certificate's DER SubjectPublicKeyInfo, computed by openssl (what
/// `kubeadm join --discovery-token-ca-cert-hash sha256:…` carries).
pub fn openssl_ca_hash(pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in {} -pubkey -noout | openssl pkey -pubin -outform der | sha256sum",
            path.display()
        ))
        .output()
        .unwrap();
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(hex.len(), 64, "{out:?}");
    hex
}
