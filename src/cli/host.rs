//! Reading a host over SSH for the health commands: `smartctl --scan-open` then
//! `smartctl -j -x` per device, and `/sys/class/net/*/statistics`.

use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Deserialize;

use super::target::Context;
use crate::config::SshSettings;
use crate::health::nic::{self, Sample};
use crate::health::smart::{self, Drive};
use crate::probe::exec::{self, HostKeyPolicy, SshTarget};

/// Per-command limit on the host (smartctl -x on a busy disk takes seconds).
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The SSH target and smartctl command of an inventory machine.
pub fn ssh_target(ctx: &Context, name: &str) -> anyhow::Result<(SshTarget, SshSettings)> {
    let config = ctx
        .config
        .as_ref()
        .with_context(|| format!("{name:?}: machine names need --config FILE"))?;
    let machine = config.machine(name)?;
    let ssh = machine
        .ssh
        .clone()
        .with_context(|| format!("machine {name:?} has no [machines.ssh] settings"))?;
    let policy = match (&ssh.known_hosts, &ssh.host_key) {
        (Some(path), None) => HostKeyPolicy::KnownHosts(path.clone()),
        (None, Some(key)) => {
            let b64 = key.split_whitespace().nth(1).unwrap_or(key);
            HostKeyPolicy::Pinned(
                russh::keys::parse_public_key_base64(b64)
                    .with_context(|| format!("machine {name:?}: ssh.host_key"))?,
            )
        }
        _ => bail!("machine {name:?}: ssh needs exactly one of known_hosts, host_key"),
    };
    let target = SshTarget {
        host: machine.host.clone().unwrap_or_else(|| machine.name.clone()),
        port: ssh.port,
        user: ssh.user.clone(),
        key: ssh.key.clone(),
        policy,
        connect_timeout: crate::timeouts::SSH_CONNECT,
    };
    Ok((target, ssh))
}

#[derive(Deserialize)]
struct Scan {
    #[serde(default)]
    devices: Vec<ScanDevice>,
}

#[derive(Deserialize)]
struct ScanDevice {
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// Shell-quote one argument.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Every drive smartctl finds on the host.
pub async fn smart_over_ssh(ctx: &Context, name: &str) -> anyhow::Result<Vec<Drive>> {
    let (t, ssh) = ssh_target(ctx, name)?;
    let scan = exec::exec(
        &t,
        &format!("{} --scan-open -j", ssh.smartctl),
        COMMAND_LIMIT,
    )
    .await?;
    let scan: Scan = serde_json::from_slice(&scan.stdout)
        .with_context(|| format!("{name}: smartctl --scan-open -j printed no JSON"))?;
    let mut drives = Vec::new();
    for dev in scan.devices {
        let kind = dev
            .kind
            .as_deref()
            .map(|k| format!("-d {} ", q(k)))
            .unwrap_or_default();
        let out = exec::exec(
            &t,
            &format!("{} -j -x {kind}{}", ssh.smartctl, q(&dev.name)),
            COMMAND_LIMIT,
        )
        .await?;
        let mut found = smart::parse(&dev.name, &out.stdout)
            .with_context(|| format!("{name}: smartctl -x {}", dev.name))?;
        for d in &mut found {
            d.device = dev.name.clone();
        }
        drives.extend(found);
    }
    Ok(drives)
}

/// Every interface's sysfs counters on the host.
pub async fn nic_over_ssh(ctx: &Context, name: &str) -> anyhow::Result<Vec<Sample>> {
    let (t, _) = ssh_target(ctx, name)?;
    let script = "cd /sys/class/net && for i in *; do echo \"== $i\"; for f in \"$i\"/statistics/*; do \
                  echo \"${f##*/} $(cat \"$f\")\"; done; echo \"carrier_changes $(cat \"$i/carrier_changes\" 2>/dev/null)\"; done";
    let out = exec::exec(&t, script, COMMAND_LIMIT).await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut samples = Vec::new();
    let mut current: Option<(String, Vec<(String, String)>)> = None;
    for line in text.lines() {
        if let Some(iface) = line.strip_prefix("== ") {
            if let Some((i, files)) = current.take() {
                samples.push(nic::from_sysfs(&i, &files));
            }
            current = Some((iface.to_owned(), Vec::new()));
        } else if let (Some((_, files)), Some((k, v))) = (current.as_mut(), line.split_once(' ')) {
            files.push((k.to_owned(), v.to_owned()));
        }
    }
    if let Some((i, files)) = current {
        samples.push(nic::from_sysfs(&i, &files));
    }
    Ok(samples)
}
