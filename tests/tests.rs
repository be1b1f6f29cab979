//! The one integration-test binary (`autotests = false`): every module below runs the real
//! `oob` binary or library against real peers (sushy-emulator, recorded vendor trees) and the
//! stateful mock BMC. Peers are started by the tests; the test script installs them.

// Test code: unwrap/expect are the assertions here (clippy.toml allows them in #[test] fns
// only, not in the helpers these tests share).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod deploy;
mod failover;

mod cli;
mod fleet;
mod hardware_poll;
mod health_corpus;
mod inband_e2e;
mod ipmi_mock;
mod ipmi_sim;
mod k8s;
mod ladder;
mod locator;
mod peers_e2e;
mod probe_netns;
mod redfish_faults;
mod redfish_sushy;
mod redfish_trees;
mod replace_e2e;
mod report_delivery;
mod secrets;
mod ssh_exec;
mod tls;
