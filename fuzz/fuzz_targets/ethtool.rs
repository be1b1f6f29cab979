//! `ethtool -S` output: parsing and findings must never panic.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use oob::health::nic;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(sample) = nic::parse_ethtool("fuzz", &text) {
        let _ = nic::findings(None, &sample, Duration::from_secs(1), nic::Thresholds::default());
        let _ = nic::findings(Some(&sample), &sample, Duration::from_secs(0), nic::Thresholds::default());
    }
});
