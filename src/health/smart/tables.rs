//! What each counter and warning bit means, and how bad it is.

use crate::health::Level;

/// NVMe critical-warning bits (NVMe base spec, SMART/Health log byte 0), with severities.
pub const NVME_WARNINGS: [(u8, &str, &str, Level); 6] = [
    (
        0x01,
        "nvme_spare_below_threshold",
        "available spare below threshold",
        Level::Critical,
    ),
    (
        0x02,
        "nvme_temperature",
        "temperature above or below a threshold",
        Level::Warning,
    ),
    (
        0x04,
        "nvme_reliability_degraded",
        "NVM subsystem reliability degraded (media or internal errors)",
        Level::Critical,
    ),
    (
        0x08,
        "nvme_read_only",
        "media placed in read-only mode",
        Level::Critical,
    ),
    (
        0x10,
        "nvme_volatile_backup_failed",
        "volatile memory backup device failed",
        Level::Critical,
    ),
    (
        0x20,
        "nvme_pmr_read_only",
        "persistent memory region read-only or unreliable",
        Level::Critical,
    ),
];

/// (code, ATA attribute ids, severity, what it means)
pub(super) const ATA_COUNTERS: [(&str, &[u8], Level, &str); 6] = [
    (
        "smart_reallocated_sectors",
        &[5],
        Level::Warning,
        "reallocated sectors",
    ),
    (
        "smart_pending_sectors",
        &[197],
        Level::Critical,
        "sectors pending reallocation (unreadable)",
    ),
    (
        "smart_offline_uncorrectable",
        &[198],
        Level::Critical,
        "offline uncorrectable sectors",
    ),
    (
        "smart_reported_uncorrect",
        &[187],
        Level::Warning,
        "uncorrectable errors reported to the host",
    ),
    (
        "smart_crc_errors",
        &[199],
        Level::Warning,
        "interface CRC errors (cable or backplane)",
    ),
    (
        "smart_reallocation_events",
        &[196],
        Level::Warning,
        "reallocation events",
    ),
];
