//! Reads that feed the ladder's evidence and do not belong to one protocol module. Today:
//! [`host`], the host's own hardware over SSH (SMART drives, NIC counters) with the
//! baselines that make only new or rising errors count. (The liveness probes, the Node
//! cache and the BMC look still live in `service::round`; they move here with the core
//! rebuild.)

pub mod host;
