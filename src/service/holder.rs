//! This replica's name in leases and Events: stable across restarts, so that a restarted
//! `oob serve` recognises the leader lease and the per-node locks it held before a crash
//! instead of waiting for them to expire.
//!
//! In order: `--holder` / `OOB_HOLDER` (the Deployment sets it to the pod name through the
//! downward API), `POD_NAME`, `HOSTNAME`, the kernel's hostname (a systemd service gets no
//! `HOSTNAME` variable), the machine ID, and only then the process ID (not stable: said in
//! the log).

/// The holder identity from what this process can see. `env` reads a variable, `file` a
/// file's first line.
pub fn holder_from(
    given: Option<String>,
    env: impl Fn(&str) -> Option<String>,
    file: impl Fn(&str) -> Option<String>,
) -> (String, &'static str) {
    let clean = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    if let Some(h) = clean(given) {
        return (h, "--holder");
    }
    for var in ["POD_NAME", "HOSTNAME"] {
        if let Some(h) = clean(env(var)) {
            return (h, var);
        }
    }
    if let Some(h) = clean(file("/proc/sys/kernel/hostname")) {
        return (h, "hostname");
    }
    if let Some(id) = clean(file("/etc/machine-id")) {
        return (format!("oob-{id}"), "machine-id");
    }
    (
        format!("oob-{}", std::process::id()),
        "process id (not stable across restarts)",
    )
}

/// The holder identity of this process, and where it came from.
pub fn holder(given: Option<String>) -> (String, &'static str) {
    holder_from(
        given,
        |v| std::env::var(v).ok(),
        |p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|s| s.lines().next().map(str::to_owned))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_stable_source_wins() {
        let none = |_: &str| None;
        let host_file = |p: &str| (p == "/proc/sys/kernel/hostname").then(|| "ops-1\n".to_owned());
        let machine_id = |p: &str| (p == "/etc/machine-id").then(|| "abc123".to_owned());
        assert_eq!(holder_from(Some("me".into()), none, none).0, "me");
        let pod = |v: &str| (v == "POD_NAME").then(|| "oob-7d9-x".to_owned());
        assert_eq!(
            holder_from(None, pod, host_file),
            ("oob-7d9-x".into(), "POD_NAME")
        );
        assert_eq!(
            holder_from(None, none, host_file),
            ("ops-1".into(), "hostname")
        );
        assert_eq!(
            holder_from(None, none, machine_id),
            ("oob-abc123".into(), "machine-id")
        );
        let blank = |_: &str| Some("  ".to_owned());
        assert!(holder_from(None, blank, blank).1.starts_with("process id"));
    }
}
