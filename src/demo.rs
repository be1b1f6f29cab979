//! `oob demo`: the service against a simulated fleet from `mocks/` (mock Redfish BMCs, hosts
//! that follow their BMC's power and answer SSH, the fake API server), with five scripted
//! faults:
//!
//! 1. `node-1` hangs and ignores the soft reboot; the verified hard cycle brings it back;
//! 2. `node-2`'s BMC logs a drive fault: cordoned, drained, reported, never power-cycled;
//! 3. `node-3` hangs, but its BMC manages another machine (the Node's systemUUID differs):
//!    the power action is refused and reported, never sent;
//! 4. `node-4`'s link flaps (down 0.4 s of every 2 s): never remediated;
//! 5. `node-5`'s own drive fails SMART between two polls over SSH (the BMC knows nothing):
//!    cordoned, drained, reported with the SMART finding, never power-cycled;
//! 6. `node-6`'s kubelet stops: the host checks over SSH name it, it is restarted over SSH,
//!    no reboot, uncordoned after the health check;
//! 7. node-problem-detector reports KernelDeadlock on `node-7` (its kubelet still Ready):
//!    cordon, soft reboot over SSH, verified by a new bootID, health check, uncordon.
//!
//! Plus healthy nodes as the control group. Whether a scenario passed is judged from what
//! the peers observed (the mock BMC's received resets, the fake API server's Node and pods,
//! the report files), not from what the service says it did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use oob_mocks::machine_room::{Mailbox, Webhook};
use oob_mocks::sim::{self, HostSpec, SimFleet, Timing};
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::config::{
    Config, CredentialRef, Liveness, Location, Machine, PolicySettings, ServiceSettings,
    TlsSettings,
};
use crate::remedy::executor::Line;
use crate::remedy::stage::Stage;

mod evaluate;

use evaluate::evaluate;

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub node: String,
    pub expected: String,
    pub outcome: String,
    pub passed: bool,
    /// Power cycles the BMC received (ForceOff requests).
    pub power_cycles: usize,
    /// Soft reboots the BMC received (GracefulRestart requests).
    pub soft_reboots: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoResult {
    pub scenarios: Vec<ScenarioResult>,
    pub reports: Vec<PathBuf>,
}

impl DemoResult {
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|s| s.passed)
    }
}

/// Knobs for tests and the README's measurements.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Journal and reports go here (created; an old journal is removed).
    pub dir: PathBuf,
    /// Longest run; the demo ends earlier once every scenario has settled.
    pub deadline: Duration,
    /// Healthy nodes besides the five scenarios.
    pub healthy: usize,
    /// The status page's address (another free port when this one is taken).
    pub listen: String,
}

/// Nodes that play a scenario (the rest are the control group).
pub const SCENARIO_NODES: usize = 7;

const SCENARIOS: [(&str, &str, &str); SCENARIO_NODES] = [
    (
        "hung node recovers after the hard cycle",
        "node-1",
        "soft reboot ignored, verified hard power cycle, reboot verified, uncordoned",
    ),
    (
        "failing disk is fenced and reported",
        "node-2",
        "cordoned, drained, fault report naming the drive, never power-cycled",
    ),
    (
        "BMC identity mismatch is refused",
        "node-3",
        "power action refused and reported, no power request sent",
    ),
    (
        "flapping link is not remediated",
        "node-4",
        "no action at all",
    ),
    (
        "drive failing SMART over SSH is fenced and reported",
        "node-5",
        "cordoned, drained, fault report naming /dev/sda, never power-cycled",
    ),
    (
        "stopped kubelet is restarted over SSH",
        "node-6",
        "cordoned, kubelet restarted over SSH, no reboot, health check, uncordoned",
    ),
    (
        "kernel deadlock: soft reboot over SSH",
        "node-7",
        "cordoned, systemctl reboot over SSH, new bootID, health check, uncordoned, no BMC action",
    ),
];

/// The configuration the demo runs with (fast timings, TCP-only liveness); tests adjust it.
/// With `ssh_key` (the fleet's client key, written to a file), the service polls every
/// host's drives and NICs over SSH.
pub fn demo_config(
    fleet: &SimFleet,
    dir: &Path,
    password_file: &Path,
    ssh_key: Option<&Path>,
) -> anyhow::Result<Config> {
    let machines = fleet
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| -> anyhow::Result<Machine> {
            Ok(Machine {
                name: h.name.clone(),
                host: Some(h.ssh.ip().to_string()),
                bmc: crate::bmc::Endpoint::parse(&format!("{}{}", h.bmc.url(), sim::SYSTEM))?,
                profile: None,
                credentials: CredentialRef {
                    user: sim::USER.into(),
                    password_env: None,
                    password_file: Some(password_file.to_owned()),
                    password_secret: None,
                    labelled_secret: false,
                },
                tls: TlsSettings::default(),
                ssh: Some(crate::config::SshSettings {
                    user: "root".into(),
                    key: ssh_key.map_or_else(|| PathBuf::from("/nonexistent"), Path::to_owned),
                    known_hosts: None,
                    host_key: Some(h.host_key()),
                    port: h.ssh.port(),
                    smartctl: "smartctl".into(),
                    poll_hardware: ssh_key.is_some(),
                    checks: crate::health::host::Paths::default(),
                }),
                serial: Some(h.serial.clone()),
                location: Location {
                    site: Some("demo-dc".into()),
                    room: Some("hall-1".into()),
                    rack: Some(format!("r{:02}", i / 4 + 1)),
                    unit: Some(format!("U{}", (i % 4) * 2 + 10)),
                },
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Config {
        profiles_dir: None,
        inventory: Default::default(),
        service: ServiceSettings {
            probe_interval_ms: 500,
            hardware_interval_ms: 1000,
            ping_count: 1,
            probe_timeout_ms: 300,
            liveness: Liveness::SshPort,
            concurrency: 16,
            namespace: "oob-system".into(),
            journal: dir.join("journal.sqlite"),
            reports_dir: dir.join("reports"),
            listen: "127.0.0.1:0".into(),
            leader_election: true,
            shared_journal: true,
            ..ServiceSettings::default()
        },
        replacement: crate::config::ReplacementSettings::default(),
        report: crate::config::ReportSettings::default(),
        policy: PolicySettings {
            suspect_after: 3,
            confirm_timeout_s: 10,
            soft_reboot_timeout_s: 4,
            hard_reboot_timeout_s: 10,
            power_verify_timeout_s: 10,
            drain_timeout_s: 10,
            max_concurrent: 2,
            // The scenario nodes may be unhealthy at once without tripping the storm breaker
            // (the storm test trips it on purpose).
            max_unhealthy_percent: u8::try_from(
                (SCENARIO_NODES * 100 / fleet.hosts.len().max(1) + 1).min(100),
            )
            .unwrap_or(100),
            cooldown_s: 0,
            bmc_min_interval_ms: 200,
            ..PolicySettings::default()
        },
        machines,
        path: "(demo)".into(),
    })
}

/// The demo's report sinks: its webhook (JSON) and its mailbox (plain SMTP on loopback).
fn machine_room(webhook: &Webhook, mailbox: &Mailbox) -> crate::config::ReportSettings {
    use crate::config::{SinkSettings, SmtpSettings, SmtpTls, WebhookFormat, WebhookSettings};
    crate::config::ReportSettings {
        sinks: vec![
            SinkSettings::Webhook(WebhookSettings {
                name: "machine-room-hook".into(),
                url: webhook.url("/reports"),
                format: WebhookFormat::Json,
                headers: BTreeMap::new(),
                token: None,
                ca_cert: None,
            }),
            SinkSettings::Smtp(SmtpSettings {
                name: "machine-room-mail".into(),
                host: mailbox.addr.ip().to_string(),
                port: Some(mailbox.addr.port()),
                tls: SmtpTls::None,
                user: None,
                password: None,
                from: "oob <oob@demo.invalid>".into(),
                to: vec!["noc@demo.invalid".into()],
                routes: vec![crate::config::MailRoute {
                    site: Some("demo-dc".into()),
                    room: Some("hall-1".into()),
                    to: vec!["hall-1-techs@demo.invalid".into()],
                }],
                ca_cert: None,
            }),
        ],
        retry_min_s: 1,
        retry_max_s: 5,
        ..crate::config::ReportSettings::default()
    }
}

/// Write a file only its owner can read (the simulated BMCs' password).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    o.mode(0o600);
    o.open(path)?.write_all(text.as_bytes())
}

/// Run the demo; `on_line` sees every timeline line as it happens.
pub async fn run(
    o: &DemoOptions,
    on_line: impl Fn(&Line) + Send + 'static,
) -> anyhow::Result<DemoResult> {
    std::fs::create_dir_all(&o.dir).with_context(|| format!("creating {}", o.dir.display()))?;
    for stale in ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"] {
        let _ = std::fs::remove_file(o.dir.join(stale));
    }
    let _ = std::fs::remove_dir_all(o.dir.join("reports"));
    let mut specs: Vec<HostSpec> = (1..=SCENARIO_NODES + o.healthy)
        .map(|i| HostSpec::new(&format!("node-{i}")))
        .collect();
    // node-3's Node says it is another machine than the one its BMC manages.
    specs[2].node_uuid = Some("5a1d0000-0000-4000-8000-0000000000ff".into());
    let fleet = SimFleet::start(&specs, Timing::default()).await?;
    let password_file = o.dir.join("bmc-password");
    write_private(&password_file, sim::PASSWORD)?;
    let key_file = o.dir.join("ssh-key");
    let key = fleet
        .ssh_client_key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .context("encoding the fleet's SSH key")?;
    write_private(&key_file, &key)?;
    // The machine room: a webhook and a mailbox the reports are delivered to.
    let webhook = Webhook::start("127.0.0.1:0".parse()?).await?;
    let mailbox = Mailbox::start("127.0.0.1:0".parse()?).await?;
    let mut config = demo_config(&fleet, &o.dir, &password_file, Some(&key_file))?;
    config.report = machine_room(&webhook, &mailbox);
    let kube_config = kube::Config::new(fleet.api.url().parse()?);
    let client = crate::k8s::client(kube_config)?;
    let (feed, mut lines) = broadcast::channel(1024);
    let svc = crate::service::build(config, client, false, "oob-demo", feed)?;
    let printer = tokio::spawn(async move {
        loop {
            match lines.recv().await {
                Ok(line) => on_line(&line),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let (stop_tx, stop) = watch::channel(false);
    let listen: std::net::SocketAddr = o.listen.parse().context("--listen")?;
    let (page, _http) = match crate::service::serve_http(svc.clone(), listen, stop.clone()).await {
        Ok(bound) => bound,
        Err(_) => crate::service::serve_http(
            svc.clone(),
            std::net::SocketAddr::new(listen.ip(), 0),
            stop.clone(),
        )
        .await
        .context("starting the status page")?,
    };
    svc.exec.note(
        "demo",
        format!("status page: http://{page}/ (while the demo runs)"),
    );
    let runner = tokio::spawn(svc.clone().run(stop));

    let started = Instant::now();
    let host = |n: &str| fleet.host(n).context("simulated host missing");
    host("node-4")?.flap(Duration::from_secs(2), Duration::from_millis(400));
    tokio::time::sleep(Duration::from_secs(1)).await;
    host("node-1")?.hang();
    host("node-2")?.fail_disk();
    host("node-3")?.hang();
    host("node-6")?.stop_kubelet();
    host("node-7")?.kernel_deadlock();
    // After the first poll has set node-5's baseline (the hardware interval is 1 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    host("node-5")?.fail_smart();

    // Settle: node-1 healthy again after a cycle, node-2 and node-3 handed to people, and
    // the flapping node watched for at least 15 s.
    loop {
        let stages: BTreeMap<String, Stage> = svc.stages().into_iter().collect();
        let settled = matches!(stages.get("node-1"), Some(Stage::Healthy))
            && host("node-1")?.boots() > 0
            && matches!(stages.get("node-2"), Some(Stage::AwaitReplacement { .. }))
            && matches!(stages.get("node-3"), Some(Stage::AwaitReplacement { .. }))
            && matches!(stages.get("node-5"), Some(Stage::AwaitReplacement { .. }))
            && matches!(stages.get("node-6"), Some(Stage::Healthy))
            && host("node-6")?.os().restarts > 0
            && matches!(stages.get("node-7"), Some(Stage::Healthy))
            && host("node-7")?.boots() > 0
            && started.elapsed() >= Duration::from_secs(15);
        if settled || started.elapsed() >= o.deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The reports reach the machine room within a few delivery passes.
    let delivered_by = Instant::now() + Duration::from_secs(15);
    while svc.exec.journal().pending_deliveries().unwrap_or(1) > 0 && Instant::now() < delivered_by
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(30), runner).await;
    let mut result = evaluate(&fleet, &svc, &o.dir)?;
    result
        .scenarios
        .push(evaluate::delivered(&svc, &webhook, &mailbox));
    drop(svc);
    printer.abort();
    Ok(result)
}
