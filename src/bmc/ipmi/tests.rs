use super::*;

#[test]
fn guid_orders_format_as_documented() {
    let b: [u8; 16] = [
        0x6f, 0x6f, 0x62, 0x73, 0x69, 0x6d, 0x2d, 0x62, 0x6d, 0x63, 0x2d, 0x67, 0x75, 0x69, 0x64,
        0x30,
    ];
    assert_eq!(
        format_guid(&b, GuidOrder::Rfc4122),
        "6f6f6273-696d-2d62-6d63-2d6775696430"
    );
    assert_eq!(
        format_guid(&b, GuidOrder::Smbios),
        "73626f6f-6d69-622d-6d63-2d6775696430"
    );
    assert_eq!(
        format_guid(&b, GuidOrder::Reversed),
        "30646975-672d-636d-622d-6d6973626f6f"
    );
}
