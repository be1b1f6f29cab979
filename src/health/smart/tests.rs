//! Findings and baselines on hand-built drives (the real corpus is in the integration tests).

use super::*;

fn ata(raw5: u64, raw197: u64) -> Drive {
    let attr = |id, name: &str, raw| Attribute {
        id,
        name: name.into(),
        value: Some(100),
        thresh: Some(10),
        raw: Some(raw),
        when_failed: WhenFailed::Never,
    };
    Drive {
        device: "/dev/sda".into(),
        protocol: Protocol::Ata,
        model: None,
        serial: None,
        overall_health: OverallHealth::Passed,
        temperature_c: Some(35),
        exit_status: Some(0),
        attributes: vec![
            attr(5, "Reallocated_Sector_Ct", raw5),
            attr(197, "Current_Pending_Sector", raw197),
        ],
        nvme: None,
        scsi: None,
    }
}

#[test]
fn counters_count_only_when_new_or_rising() {
    let first = ata(8, 0);
    let codes = |f: &[Finding]| f.iter().map(|x| x.code.clone()).collect::<Vec<_>>();
    assert_eq!(
        codes(&first.findings(None)),
        ["smart_reallocated_sectors"],
        "new: reported"
    );
    let baseline = first.snapshot();
    assert!(
        ata(8, 0).findings(Some(&baseline)).is_empty(),
        "unchanged: nothing"
    );
    let rising = ata(9, 2).findings(Some(&baseline));
    assert_eq!(
        codes(&rising),
        ["smart_pending_sectors", "smart_reallocated_sectors"]
    );
    assert_eq!(rising[0].severity, Level::Critical);
    assert!(
        rising[1].detail.contains("rose from 8 to 9"),
        "{}",
        rising[1].detail
    );
}

#[test]
fn every_nvme_critical_warning_bit_has_its_own_finding() {
    for (bit, code, _, _) in NVME_WARNINGS {
        let mut d = ata(0, 0);
        d.protocol = Protocol::Nvme;
        d.attributes.clear();
        d.nvme = Some(NvmeHealth {
            critical_warning: bit,
            ..NvmeHealth::default()
        });
        let f = d.findings(None);
        assert_eq!(f.len(), 1, "{bit:#x}: {f:?}");
        assert_eq!(f[0].code, code);
    }
}

#[test]
fn exit_status_bits_are_named() {
    assert_eq!(exit_status_meaning(0x08), ["SMART status: DISK FAILING"]);
    assert_eq!(exit_status_meaning(216).len(), 4);
}

#[test]
fn reallocated_sectors_past_the_runbook_limit_are_critical() {
    let baseline = ata(2, 0).snapshot();
    let limits = Limits {
        reallocated_sectors: 5,
    };
    let few = ata(4, 0).findings_within(Some(&baseline), &limits);
    assert_eq!(few.len(), 1);
    assert_eq!(few[0].severity, Level::Warning, "{few:?}");
    let many = ata(6, 0).findings_within(Some(&baseline), &limits);
    assert_eq!(many[0].severity, Level::Critical, "{many:?}");
    assert!(many[0].detail.contains("above 5"), "{}", many[0].detail);
    let lenient = Limits {
        reallocated_sectors: 50,
    };
    let f = ata(6, 0).findings_within(Some(&baseline), &lenient);
    assert_eq!(f[0].severity, Level::Warning, "the limit is configurable");
}
