//! The host-check script's output: splitting, every section's parser, findings and the
//! repair decision must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oob::health::host::{HostChecks, Paths};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let c = HostChecks::parse(&text, &Paths::default());
    for now in [0, 1_795_824_000, i64::MAX, i64::MIN] {
        let _ = c.findings(now);
        let _ = c.healthy(now);
    }
    let _ = c.repair();
});
