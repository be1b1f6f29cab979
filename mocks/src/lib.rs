//! Stateful mocks for `oob`'s tests and demo: a Redfish BMC with fault injection (and, in
//! later work, an IPMI BMC and a fake kube-apiserver). They exist for what real peers cannot
//! do on demand (faults, scale, scripted scenarios); correctness is also checked against
//! real peers (sushy-emulator, recorded vendor trees, ipmi_sim).
//!
//! Every server binds to loopback only and stops when its handle is dropped.

pub mod ipmi;
pub mod kube;
pub mod machine_room;
pub mod redfish;
pub mod serve;
pub mod sim;
pub mod ssh;
