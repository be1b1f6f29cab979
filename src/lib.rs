//! `oob`: out-of-band power and hardware management for bare-metal Kubernetes.
//!
//! The library holds everything; `src/main.rs` is a thin entry point into [`cli`].
//! See `DESIGN.md` in the shared notes for the data flow: probes → evidence → verdict →
//! stage machine → remedy → executor. This crate currently implements the BMC layer
//! ([`bmc`]: Redfish), its vendor profiles, configuration and the ops CLI.

pub mod bmc;
pub mod cli;
pub mod clock;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod duration;
pub mod gather;
pub mod health;
pub mod k8s;
pub mod probe;
pub mod remedy;
pub mod report;
pub mod secret;
pub mod service;
pub mod small_map;
#[cfg(test)]
mod testing;
pub mod timeouts;
pub mod verdict;
