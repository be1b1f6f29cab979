//! `oob smart|nic|diagnose NODE`: the host's hardware and the runbook's checks over SSH, through the same gatherer the service
//! polls with (`gather::host`).

use anyhow::Context as _;

use super::target::Context;
use crate::health::nic::Sample;
use crate::health::smart::Drive;

/// The machine and the address its host is reached at (its `host`, else its name).
fn machine<'a>(
    ctx: &'a Context,
    name: &str,
) -> anyhow::Result<(&'a crate::config::Machine, String)> {
    let config = ctx
        .config
        .as_ref()
        .with_context(|| format!("{name:?}: machine names need --config FILE"))?;
    let m = config.machine(name)?;
    let host = m.host.clone().unwrap_or_else(|| m.name.clone());
    Ok((m, host))
}

/// Every drive smartctl finds on the host.
pub async fn smart_over_ssh(ctx: &Context, name: &str) -> anyhow::Result<Vec<Drive>> {
    let (m, host) = machine(ctx, name)?;
    Ok(crate::gather::host::smart(m, &host).await?)
}

/// The runbook's host checks, logs read since `since`.
pub async fn checks_over_ssh(
    ctx: &Context,
    name: &str,
    since: &str,
) -> anyhow::Result<crate::health::host::HostChecks> {
    let (m, host) = machine(ctx, name)?;
    Ok(crate::gather::host::checks(m, &host, since).await?)
}

/// Every interface's sysfs counters on the host.
pub async fn nic_over_ssh(ctx: &Context, name: &str) -> anyhow::Result<Vec<Sample>> {
    let (m, host) = machine(ctx, name)?;
    Ok(crate::gather::host::nic(m, &host).await?)
}
