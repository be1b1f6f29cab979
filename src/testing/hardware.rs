//! A host's own hardware as its smartctl and sysfs would report it, behind the gatherer's
//! [`crate::gather::host::HostHardware`] seam.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

/// One host's drive and NIC as its smartctl and sysfs would report them.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostParts {
    pub drive_failed: bool,
    pub reallocated: u64,
    pub rx_packets: u64,
    pub rx_dropped: u64,
}

/// Hosts' hardware by machine name (a machine without an entry has no reachable SSH).
#[derive(Default)]
pub struct FakeHardware {
    pub hosts: Mutex<BTreeMap<String, HostParts>>,
    /// Polls per machine.
    pub polls: Mutex<BTreeMap<String, u32>>,
}

impl FakeHardware {
    pub fn edit(&self, machine: &str, f: impl FnOnce(&mut HostParts)) {
        f(self
            .hosts
            .lock()
            .unwrap()
            .entry(machine.to_owned())
            .or_default());
    }

    fn parts(
        &self,
        m: &crate::config::Machine,
    ) -> Result<HostParts, crate::gather::host::GatherError> {
        self.hosts
            .lock()
            .unwrap()
            .get(&m.name)
            .copied()
            .ok_or_else(|| crate::gather::host::GatherError::NoSsh {
                machine: m.name.clone(),
            })
    }
}

#[async_trait]
impl crate::gather::host::HostHardware for FakeHardware {
    async fn smart(
        &self,
        m: &crate::config::Machine,
        _: &str,
    ) -> Result<Vec<crate::health::smart::Drive>, crate::gather::host::GatherError> {
        use crate::health::smart::{Attribute, Drive, OverallHealth, Protocol, WhenFailed};
        *self
            .polls
            .lock()
            .unwrap()
            .entry(m.name.clone())
            .or_default() += 1;
        let p = self.parts(m)?;
        Ok(vec![Drive {
            device: "/dev/sda".into(),
            protocol: Protocol::Ata,
            model: None,
            serial: None,
            overall_health: if p.drive_failed {
                OverallHealth::Failed
            } else {
                OverallHealth::Passed
            },
            temperature_c: Some(34),
            exit_status: Some(if p.drive_failed { 8 } else { 0 }),
            attributes: vec![Attribute {
                id: 5,
                name: "Reallocated_Sector_Ct".into(),
                value: Some(100),
                thresh: Some(10),
                raw: Some(p.reallocated),
                when_failed: WhenFailed::Never,
            }],
            nvme: None,
            scsi: None,
        }])
    }

    async fn nic(
        &self,
        m: &crate::config::Machine,
        _: &str,
    ) -> Result<Vec<crate::health::nic::Sample>, crate::gather::host::GatherError> {
        let p = self.parts(m)?;
        Ok(crate::gather::host::parse_sysfs(&format!(
            "== eth0\nrx_packets {}\nrx_dropped {}\nrx_errors 0\n",
            p.rx_packets, p.rx_dropped
        )))
    }
}
