//! RMCP / RMCP+ datagrams and IPMI messages from an untrusted network: decode must return
//! an error, never panic, with and without session keys (suites 3 and 17).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oob::bmc::ipmi::crypto::{Keys, Suite};
use oob::bmc::ipmi::packet;

fuzz_target!(|data: &[u8]| {
    let k3 = Keys::derive(Suite::Three, b"password", &[1; 16], &[2; 16], 0x14, b"admin");
    let k17 = Keys::derive(Suite::Seventeen, b"password", &[1; 16], &[2; 16], 0x14, b"admin");
    let _ = packet::decode(data, None);
    let _ = packet::decode(data, Some(&k3));
    if let Ok(p) = packet::decode(data, Some(&k17)) {
        let _ = packet::decode_response(&p.payload);
    }
    let _ = packet::decode_response(data);
    let _ = k17.decrypt(data);
});
