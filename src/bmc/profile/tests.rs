use super::*;

#[test]
fn embedded_profiles_parse_and_cover_every_family() {
    let profiles = Profiles::embedded().unwrap();
    for id in [
        "generic-redfish",
        "dell-idrac",
        "hpe-ilo",
        "lenovo-xcc",
        "supermicro",
        "openbmc",
        "generic-ipmi",
    ] {
        profiles.get(id).unwrap();
    }
}

#[test]
fn detection_prefers_vendor_then_oem_then_manufacturer() {
    let profiles = Profiles::embedded().unwrap();
    let hpe = RedfishFacts {
        vendor: Some("HPE"),
        ..Default::default()
    };
    assert_eq!(profiles.detect_redfish(&hpe).unwrap().id, "hpe-ilo");
    let lenovo = RedfishFacts {
        oem_keys: vec!["Lenovo"],
        ..Default::default()
    };
    assert_eq!(profiles.detect_redfish(&lenovo).unwrap().id, "lenovo-xcc");
    let dell = RedfishFacts {
        manufacturer: Some("Dell Inc."),
        ..Default::default()
    };
    assert_eq!(profiles.detect_redfish(&dell).unwrap().id, "dell-idrac");
    let contoso = RedfishFacts {
        vendor: Some("Contoso"),
        manufacturer: Some("Contoso"),
        ..Default::default()
    };
    assert!(profiles.detect_redfish(&contoso).is_none());
}

#[test]
fn ipmi_manufacturer_ids_pick_the_vendor_profile() {
    let profiles = Profiles::embedded().unwrap();
    assert_eq!(profiles.detect_ipmi(674).unwrap().id, "dell-idrac");
    assert_eq!(profiles.detect_ipmi(10876).unwrap().id, "supermicro");
    assert!(
        profiles.detect_ipmi(4753).is_none(),
        "MontaVista (ipmi_sim): generic"
    );
}

#[test]
fn unknown_fields_and_bad_values_are_refused() {
    let base = "id = \"x\"\nname = \"X\"\nprotocol = \"redfish\"\n";
    assert!(Profile::from_toml("t", base).is_ok());
    let typo = format!("{base}quirk = []\n");
    assert!(matches!(
        Profile::from_toml("t", &typo),
        Err(ProfileError::Parse { .. })
    ));
    let bad_path = format!("{base}[redfish]\nsel_log_service = \"/x\"\n");
    assert!(matches!(
        Profile::from_toml("t", &bad_path),
        Err(ProfileError::Invalid { .. })
    ));
    let bad_quirk = format!("{base}quirks = [\"no-such-quirk\"]\n");
    assert!(Profile::from_toml("t", &bad_quirk).is_err());
}
