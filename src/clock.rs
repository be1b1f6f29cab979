//! Wall-clock time in one place: milliseconds since the Unix epoch (what positions, the
//! journal and timelines store, so that they survive a restart) and its RFC 3339 form.

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// RFC 3339 (UTC, seconds) of a millisecond timestamp.
pub fn rfc3339(ms: u64) -> String {
    k8s_openapi::jiff::Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(0))
        .map(|t| format!("{t:.0}"))
        .unwrap_or_else(|_| ms.to_string())
}
