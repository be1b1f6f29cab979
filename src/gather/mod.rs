//! Reads that feed the ladder's evidence and do not belong to one protocol module:
//! [`liveness`] (ICMP and the SSH port, behind a seam) and [`host`], the host's own hardware
//! over SSH (SMART drives, NIC counters) with the baselines that make only new or rising
//! errors count. The service's round composes them with the Node cache and the BMC look
//! into one [`crate::verdict::Evidence`].

pub mod host;
pub mod liveness;

use std::net::IpAddr;

use crate::config::Machine;
use crate::k8s::NodeInfo;

/// The address the host is probed at: the configured `host` when it is an IP address, else
/// the Node's InternalIP, else its ExternalIP.
pub fn host_address(m: &Machine, node: Option<&NodeInfo>) -> Option<IpAddr> {
    if let Some(ip) = m.host.as_deref().and_then(|h| h.parse().ok()) {
        return Some(ip);
    }
    let node = node?;
    ["InternalIP", "ExternalIP"].iter().find_map(|kind| {
        node.addresses
            .iter()
            .filter(|(t, _)| t == kind)
            .find_map(|(_, a)| a.parse().ok())
    })
}
