//! Liveness probes: ICMP echo (our own engine, [`icmp`]) and the SSH banner. They measure
//! and report; they do not interpret (the verdict does). Every probe has a deadline.

pub mod exec;
pub mod icmp;
pub mod ping;
pub mod ssh;

/// Why a probe could not run at all (a host that does not answer is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "cannot open an ICMP socket ({detail}): run as root, give the binary CAP_NET_RAW \
         (setcap cap_net_raw+ep), or widen net.ipv4.ping_group_range to include this user's group"
    )]
    IcmpPermission { detail: String },
    #[error("cannot resolve {target}: {detail}")]
    Resolve { target: String, detail: String },
}
