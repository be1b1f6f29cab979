//! The parsers against real tool output in `shared/peers` (smartctl JSON and text, ethtool -S).

use std::collections::BTreeMap;
use std::time::Duration;

use oob::health::nic::{self, Thresholds};
use oob::health::smart::{self, OverallHealth, NVME_WARNINGS};
use oob::health::Level;

use crate::common::peers;

/// manifest.csv rows: file → (overall_health, notable attributes). Fields may be quoted.
fn manifest() -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(peers().join("smart-corpus/manifest.csv")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().skip(1) {
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() >= 6 {
            out.insert(fields[0].clone(), (fields[4].clone(), fields[5].clone()));
        }
    }
    out
}

#[test]
fn every_smart_file_parses_and_health_agrees_with_the_manifest() {
    let corpus = peers().join("smart-corpus");
    let manifest = manifest();
    assert!(manifest.len() > 200, "manifest rows: {}", manifest.len());
    let (mut checked, mut failed_drives) = (0, 0);
    for (file, (health, notable)) in &manifest {
        let bytes = std::fs::read(corpus.join(file)).unwrap();
        let drives = smart::parse(file, &bytes);
        let want = match health.as_str() {
            "PASSED" => OverallHealth::Passed,
            "FAILED" => OverallHealth::Failed,
            _ => continue,
        };
        let drives = drives.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(drives.len(), 1, "{file}");
        let d = &drives[0];
        assert_eq!(d.overall_health, want, "{file}");
        checked += 1;
        let findings = d.findings(None);
        if want == OverallHealth::Failed {
            failed_drives += 1;
            assert!(
                findings.iter().any(|f| f.severity == Level::Critical),
                "{file}: {findings:?}"
            );
        }
        if let Some(cw) = notable
            .split("; ")
            .find_map(|n| n.strip_prefix("critical_warning=0x"))
        {
            let bits = u8::from_str_radix(cw, 16).unwrap();
            assert_eq!(d.nvme.as_ref().unwrap().critical_warning, bits, "{file}");
            for (bit, code, _, _) in NVME_WARNINGS {
                assert_eq!(
                    findings.iter().any(|f| f.code == code),
                    bits & bit != 0,
                    "{file}: bit {bit:#x}"
                );
            }
        }
        for (key, attr) in [
            ("5:Reallocated_Sector_Ct=", 5u8),
            ("197:Current_Pending_Sector=", 197),
        ] {
            if let Some(v) = notable.split("; ").find_map(|n| n.strip_prefix(key)) {
                let raw = d
                    .attributes
                    .iter()
                    .find(|a| a.id == attr)
                    .and_then(|a| a.raw);
                assert_eq!(raw, v.parse().ok(), "{file}: attribute {attr}");
            }
        }
    }
    assert!(checked >= 180, "checked {checked}");
    assert!(failed_drives >= 20, "failed drives {failed_drives}");
}

#[test]
fn every_file_in_the_corpus_parses_without_panic() {
    for dir in ["json", "text"] {
        for entry in std::fs::read_dir(peers().join("smart-corpus").join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let _ = smart::parse(&path.display().to_string(), &bytes);
        }
    }
}

fn ethtool(name: &str) -> nic::Sample {
    let path = peers().join("nic-corpus/ethtool").join(name);
    nic::parse_ethtool(name, &std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn ethtool_counters_are_normalised_across_drivers() {
    let c = ethtool("go-ethtool-metrics__i40e__00_sfp_10g_sr85__ethtool-S.txt").counters;
    assert_eq!(
        (c.rx_errors, c.tx_errors, c.rx_crc_errors),
        (Some(19), Some(20), Some(25))
    );
    let c = ethtool("showmax__ixgbe418_sfp_10gsr85__ethtool-S.txt").counters;
    assert_eq!(
        (c.rx_errors, c.rx_dropped, c.rx_crc_errors),
        (Some(442), Some(363), Some(223))
    );
    let c = ethtool("showmax__tg3_418_int_tp__ethtool-S.txt").counters;
    assert_eq!(
        (c.rx_crc_errors, c.rx_errors, c.tx_dropped),
        (Some(0), Some(0), Some(0)),
        "tg3 names FCS and discards"
    );
    let c = ethtool("showmax__bnxten418_sfp_10gwtf1__ethtool-S.txt").counters;
    assert!(
        c.rx_errors.is_some(),
        "bnxt_en per-queue counters are summed: {c:?}"
    );
    let c = ethtool("this-host__eth0__ethtool-S.txt").counters;
    assert_eq!(c.rx_dropped, Some(0), "virtio_net rx_drops");
    for entry in std::fs::read_dir(peers().join("nic-corpus/ethtool")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("ethtool-S.txt") {
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.trim().is_empty() {
                nic::parse_ethtool(&name, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

#[test]
fn nic_findings_need_rising_counters() {
    let before = ethtool("showmax__ixgbe418_sfp_10gsr85__ethtool-S.txt");
    let first = nic::findings(
        None,
        &before,
        Duration::from_secs(60),
        Thresholds::default(),
    );
    assert!(
        first.iter().any(|f| f.code == "nic_crc_errors"),
        "{first:?}"
    );
    let same = nic::findings(
        Some(&before),
        &before,
        Duration::from_secs(60),
        Thresholds::default(),
    );
    assert!(same.is_empty(), "{same:?}");
    let mut after = before.clone();
    after.counters.rx_crc_errors = Some(223 + 6000);
    let rising = nic::findings(
        Some(&before),
        &after,
        Duration::from_secs(60),
        Thresholds::default(),
    );
    assert_eq!(rising.len(), 1);
    assert_eq!(
        (rising[0].code.as_str(), rising[0].severity),
        ("nic_crc_errors", Level::Critical)
    );
}
