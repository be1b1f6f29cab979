//! A simulated host's SSH server: real SSH (russh) with a host key made at start, public-key
//! authentication for exactly one client key (anything else is refused, as sshd refuses an
//! unknown key), and the read-only commands `oob` runs for hardware health answered from the
//! host's simulated drive and NIC: `smartctl --scan-open -j`, `smartctl -j -x DEVICE` and
//! the sysfs counter script; and for the in-band rungs `oob`'s host-check script (the
//! kubelet's and the runtime's unit state, `systemctl show` style; the other checks are left
//! unanswered, as on a host without those tools), `systemctl restart kubelet.service` and
//! `systemctl reboot`. Any other command exits 127, like a shell that lacks it.
//!
//! The smartctl output is written here from the host's state (one SATA drive, `/dev/sda`),
//! in the shape smartctl 7 prints with `-j`; it is not a copy of any real drive's output.

use std::sync::{Arc, Mutex};

use rand::RngCore as _;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{self, Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use serde_json::json;

/// The simulated drive.
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk {
    /// SMART overall-health self-assessment failed.
    pub failed: bool,
    pub reallocated: u64,
}

/// The simulated operating system, as far as `oob`'s in-band rungs see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Os {
    /// The kubelet unit is stopped (the Node goes NotReady).
    pub kubelet_stopped: bool,
    /// node-problem-detector reports KernelDeadlock (cleared by a reboot).
    pub deadlock: bool,
    /// `systemctl reboot` was asked and the simulation has not rebooted yet.
    pub reboot_requested: bool,
    /// `systemctl restart kubelet.service` calls received.
    pub restarts: u32,
    /// `systemctl reboot` calls received.
    pub reboots: u32,
}

/// A fresh ed25519 key.
pub fn new_key() -> PrivateKey {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// What every connection to one host shares.
#[derive(Clone)]
pub struct SshHost {
    pub config: Arc<server::Config>,
    /// The one key allowed to log in.
    pub client: PublicKey,
    pub disk: Arc<Mutex<Disk>>,
    pub os: Arc<Mutex<Os>>,
    pub serial: String,
}

impl SshHost {
    pub fn new(host_key: PrivateKey, client: PublicKey, serial: &str) -> Self {
        let config = server::Config {
            keys: vec![host_key],
            auth_rejection_time: std::time::Duration::from_millis(100),
            auth_rejection_time_initial: Some(std::time::Duration::ZERO),
            inactivity_timeout: Some(std::time::Duration::from_secs(30)),
            ..server::Config::default()
        };
        Self {
            config: Arc::new(config),
            client,
            disk: Arc::default(),
            os: Arc::default(),
            serial: serial.to_owned(),
        }
    }

    /// Serve one connection until the client leaves.
    pub async fn serve(self, stream: tokio::net::TcpStream) {
        let config = self.config.clone();
        if let Ok(session) = server::run_stream(config, stream, self).await {
            let _ = session.await;
        }
    }

    fn disk(&self) -> Disk {
        *self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn os(&self) -> std::sync::MutexGuard<'_, Os> {
        self.os.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (stdout, exit status) of `command`.
    fn run(&self, command: &str) -> (String, u32) {
        if command.contains("@@oob") {
            // oob's host-check script: the two unit sections, `systemctl show` style.
            let unit = |running: bool| {
                let (active, sub) = if running {
                    ("active", "running")
                } else {
                    ("inactive", "dead")
                };
                format!("Result=success\nNRestarts=0\nExecMainStatus=0\nLoadState=loaded\nActiveState={active}\nSubState={sub}\n")
            };
            let kubelet = !self.os().kubelet_stopped;
            let text = format!(
                "@@oob kubelet\n{}@@rc 0\n@@oob runtime\n{}@@rc 0\n",
                unit(kubelet),
                unit(true)
            );
            return (text, 0);
        }
        if command.contains("systemctl restart") && command.contains("kubelet.service") {
            let mut os = self.os();
            os.kubelet_stopped = false;
            os.restarts += 1;
            return (String::new(), 0);
        }
        if command.contains("systemctl reboot") {
            let mut os = self.os();
            os.reboot_requested = true;
            os.reboots += 1;
            return (String::new(), 0);
        }
        if command.contains("smartctl") && command.contains("--scan-open") {
            let scan = json!({
                "json_format_version": [1, 0],
                "smartctl": {"version": [7, 3], "exit_status": 0},
                "devices": [{"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"}],
            });
            return (scan.to_string(), 0);
        }
        if command.contains("smartctl") && command.contains("/dev/sda") {
            return self.smartctl();
        }
        if command.contains("/sys/class/net") {
            let text = "== eth0\nrx_packets 1843221\nrx_errors 0\ntx_errors 0\nrx_dropped 12\nrx_crc_errors 0\ncarrier_changes 2\n== lo\nrx_packets 90211\nrx_errors 0\ncarrier_changes 0\n";
            return (text.to_owned(), 0);
        }
        (String::new(), 127)
    }

    /// `smartctl -j -x /dev/sda`: exit status bit 3 ("disk failing") when it failed.
    fn smartctl(&self) -> (String, u32) {
        let d = self.disk();
        let status = if d.failed { 8 } else { 0 };
        let (value5, when5) = if d.failed { (1, "now") } else { (100, "") };
        let doc = json!({
            "json_format_version": [1, 0],
            "smartctl": {"version": [7, 3], "exit_status": status},
            "device": {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"},
            "model_name": "SIM SATA SSD 960GB",
            "serial_number": format!("{}-D0", self.serial),
            "smart_status": {"passed": !d.failed},
            "temperature": {"current": 34},
            "ata_smart_attributes": {"revision": 1, "table": [
                {"id": 5, "name": "Reallocated_Sector_Ct", "value": value5, "worst": value5, "thresh": 10,
                 "when_failed": when5, "raw": {"value": d.reallocated, "string": d.reallocated.to_string()}},
                {"id": 9, "name": "Power_On_Hours", "value": 99, "worst": 99, "thresh": 0,
                 "when_failed": "", "raw": {"value": 12011, "string": "12011"}},
                {"id": 197, "name": "Current_Pending_Sector", "value": 100, "worst": 100, "thresh": 0,
                 "when_failed": "", "raw": {"value": 0, "string": "0"}},
            ]},
        });
        (doc.to_string(), status)
    }
}

impl server::Handler for SshHost {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if key.public_key.key_data() == self.client.key_data() {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (stdout, status) = self.run(&String::from_utf8_lossy(data));
        session.channel_success(channel)?;
        if !stdout.is_empty() {
            session.data(channel, stdout.into_bytes())?;
        }
        session.exit_status_request(channel, status)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }
}
