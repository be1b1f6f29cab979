//! Reads that feed the ladder's evidence and do not belong to one protocol module:
//! [`liveness`] (ICMP and the SSH port, behind a seam) and [`host`], the host's own hardware
//! over SSH (SMART drives, NIC counters) with the baselines that make only new or rising
//! errors count. The service's round composes them with the Node cache and the BMC look
//! into one [`crate::verdict::Evidence`].

pub mod host;
pub mod liveness;
