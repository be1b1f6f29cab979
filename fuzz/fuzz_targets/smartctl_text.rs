//! smartctl output (text via nom, JSON via serde) from a host we do not trust: parsing and
//! computing findings must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oob::health::smart;

fuzz_target!(|data: &[u8]| {
    if let Ok(drives) = smart::parse("fuzz", data) {
        for d in drives {
            let baseline = d.snapshot();
            let _ = d.findings(None);
            let _ = d.findings(Some(&baseline));
        }
    }
    let _ = oob::health::parse_count(&String::from_utf8_lossy(data));
});
