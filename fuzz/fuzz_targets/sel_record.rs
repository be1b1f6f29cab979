//! SEL records from a BMC: decoding and rendering must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oob::bmc::ipmi::sel;

fuzz_target!(|data: &[u8]| {
    if let Some(record) = sel::decode(data) {
        let entry = record.to_entry();
        assert!(!entry.id.is_empty());
    }
    if data.len() >= 4 {
        let _ = sel::describe(data[0], data[1], data[2], data[3] & 1 == 1);
        let _ = sel::rfc3339(u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]])));
    }
});
