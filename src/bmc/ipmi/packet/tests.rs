//! Round trips and rejection of bad bytes.

use proptest::prelude::*;

use super::*;
use crate::bmc::ipmi::crypto::Suite;

fn keys(suite: Suite) -> Keys {
    Keys::derive(suite, b"password", &[3; 16], &[4; 16], 0x14, b"admin")
}

#[test]
fn get_device_id_request_matches_ipmitool_bytes() {
    // App (0x06) / Get Device ID with rqSeq 1: rsAddr, netFn, sum, rqAddr, seq, cmd, sum.
    assert_eq!(
        encode_request(0x06, 0x01, 1, &[]),
        vec![0x20, 0x18, 0xc8, 0x81, 0x04, 0x01, 0x7a]
    );
}

#[test]
fn corrupted_auth_code_or_checksum_is_rejected() {
    let k = keys(Suite::Three);
    let mut p = encode_v2(
        payload::IPMI,
        7,
        9,
        &encode_request(0, 1, 2, &[]),
        Some(&k),
        [1; 16],
    );
    let last = p.len() - 1;
    p[last] ^= 1;
    assert_eq!(decode(&p, Some(&k)), Err(DecodeError::AuthCode));
    let mut m = encode_request(0, 1, 2, &[5]);
    m[4] ^= 0x10;
    assert_eq!(decode_response(&m), Err(DecodeError::Checksum));
}

proptest! {
    #[test]
    fn v2_packets_round_trip(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        sid in any::<u32>(), seq in any::<u32>(), ptype in 0u8..0x3f, auth in any::<bool>(),
        seventeen in any::<bool>(), iv in any::<[u8; 16]>(),
    ) {
        let k = keys(if seventeen { Suite::Seventeen } else { Suite::Three });
        let keys = auth.then_some(&k);
        let bytes = encode_v2(ptype, sid, seq, &payload, keys, iv);
        let p = decode(&bytes, Some(&k)).unwrap();
        prop_assert_eq!(p.payload, payload);
        prop_assert_eq!((p.session_id, p.seq, p.payload_type), (sid, seq, Some(ptype)));
        prop_assert_eq!(p.authenticated, auth);
    }

    #[test]
    fn messages_round_trip(netfn in 0u8..0x3f, cmd in any::<u8>(), seq in 0u8..0x40,
                           cc in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..40)) {
        // Build a response the way a BMC does and decode it.
        let head = [CONSOLE_ADDR, (netfn | 1) << 2];
        let mut m = head.to_vec();
        m.push(checksum(&head));
        let mut body = vec![BMC_ADDR, seq << 2, cmd, cc];
        body.extend_from_slice(&data);
        let sum = checksum(&body);
        m.extend_from_slice(&body);
        m.push(sum);
        let r = decode_response(&m).unwrap();
        prop_assert_eq!((r.netfn, r.cmd, r.rq_seq, r.completion), (netfn | 1, cmd, seq, cc));
        prop_assert_eq!(r.data, data);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let k = keys(Suite::Seventeen);
        let _ = decode(&bytes, Some(&k));
        let _ = decode(&bytes, None);
        let _ = decode_response(&bytes);
    }
}
