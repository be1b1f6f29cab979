use super::*;

/// A recorded output (tests/fixtures/host, README there says how each was made).
macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/host/",
            $name
        ))
    };
}

/// A recording ends with the `rc=N` line the recorder appended; the script's own section
/// would carry it as `@@rc N`.
fn section(name: &str, recorded: &str) -> String {
    let (text, rc) = match recorded.trim_end().rsplit_once("rc=") {
        Some((text, rc)) if rc.parse::<i32>().is_ok() => (text.to_owned(), rc.to_owned()),
        _ => (recorded.to_owned(), "0".to_owned()),
    };
    format!("@@oob {name}\n{text}@@rc {rc}\n")
}

const NOW: i64 = 1_795_824_000; // 2026-11-28T00:00:00Z

fn codes(c: &HostChecks) -> Vec<String> {
    c.findings(NOW).into_iter().map(|f| f.code).collect()
}

#[test]
fn the_script_runs_every_command_under_a_time_limit_and_quotes_paths() {
    let p = Paths {
        kubelet_root: "/srv/kube let".into(),
        ..Paths::default()
    };
    let s = script(&p, "@1795824000");
    for line in s.lines().skip(1) {
        assert!(line.starts_with("echo '@@oob "), "{line}");
        assert!(line.ends_with("echo \"@@rc $?\""), "{line}");
        let cmd = line.split("( ").nth(1).unwrap();
        assert!(
            cmd.starts_with("timeout 10 ")
                || cmd.starts_with("cat /proc")
                || cmd.starts_with("grep "),
            "{cmd}"
        );
    }
    assert_eq!(
        s.lines().count() as u64,
        SECTIONS + 1,
        "SCRIPT_LIMIT counts them"
    );
    assert!(s.contains("df -P / /var '/srv/kube let'"), "{s}");
    assert!(s.contains("--since '@1795824000'"));
    for mutating in [
        "systemctl restart",
        "systemctl start",
        "reboot",
        "rm ",
        "kill ",
        " > ",
        ">>",
    ] {
        assert!(!s.contains(mutating), "read-only: {mutating}");
    }
}

#[test]
fn sections_split_on_markers_at_line_starts_and_a_cut_output_has_no_rc() {
    let out = "motd\n@@oob a\nx @@oob not-a-marker\n@@rc 0\n@@oob b\npartial";
    let s = sections(out);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(
        (s[0].name, s[0].text, s[0].rc),
        ("a", "x @@oob not-a-marker\n", Some(0))
    );
    assert_eq!((s[1].name, s[1].text, s[1].rc), ("b", "partial", None));
}

#[test]
fn real_df_output_with_a_missing_path_and_a_repeated_filesystem() {
    let rows = Usage::parse_df(fixture!("df-P.txt"));
    assert_eq!(
        rows.len(),
        1,
        "the error line and the duplicate are dropped: {rows:?}"
    );
    assert_eq!(rows[0].mount, "/");
    assert_eq!(rows[0].percent(), Some(87), "as df's Capacity column says");
    let inodes = Usage::parse_df(fixture!("df-iP.txt"));
    assert_eq!(inodes.len(), 1);
    assert!(inodes[0].percent().is_some());
    // 87 % of / is a warning, not a reason to restart anything.
    let c = HostChecks::parse(&section("df", fixture!("df-P.txt")), &Paths::default());
    let f = c.findings(NOW);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].code.as_str(), f[0].severity),
        ("disk_full", Level::Warning)
    );
    assert!(
        f[0].detail.contains("/dev/vda"),
        "evidence line: {}",
        f[0].detail
    );
    assert!(f[0].fix.is_some());
}

#[test]
fn a_mount_point_with_spaces_is_kept_whole() {
    let rows = Usage::parse_df(
        "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sdb1 1000 990 10 99% /mnt/my disk\n",
    );
    assert_eq!(rows[0].mount, "/mnt/my disk");
    assert_eq!(rows[0].percent(), Some(99));
}

#[test]
fn real_proc_files_give_pids_and_memory() {
    let out = format!(
        "{}{}",
        section("pids", fixture!("pids.txt")),
        section("memory", fixture!("meminfo.txt"))
    );
    let c = HostChecks::parse(&out, &Paths::default());
    let (tasks, max) = c.pids.unwrap();
    assert_eq!(max, 32768);
    assert!(tasks > 0 && tasks < max);
    let (available, total) = c.memory.unwrap();
    assert!(available <= total && total > 1_000_000);
    assert!(codes(&c).is_empty(), "{:?}", codes(&c));
    // The same host with its PID space nearly used up.
    let exhausted = HostChecks::parse(
        "@@oob pids\n32768\n9.10 8.22 7.01 3/32000 99\n@@rc 0\n",
        &Paths::default(),
    );
    assert_eq!(codes(&exhausted), ["pids_exhausted"]);
    assert_eq!(
        exhausted.repair(),
        None,
        "no restart frees PIDs someone else holds"
    );
}

#[test]
fn without_systemd_or_crictl_the_unit_checks_are_unknown_not_failed() {
    let out = format!(
        "{}{}{}{}",
        section("kubelet", fixture!("systemctl-show-no-systemd.txt")),
        section("runtime", fixture!("systemctl-show-no-systemd.txt")),
        section("time", fixture!("timedatectl-no-systemd.txt")),
        section("cri", fixture!("crictl-missing.txt")),
    );
    let c = HostChecks::parse(&out, &Paths::default());
    assert_eq!((c.kubelet.as_ref(), c.runtime.as_ref()), (None, None));
    assert_eq!((c.time_synchronized, c.cri_answering), (None, None));
    assert!(codes(&c).is_empty());
    assert_eq!(c.repair(), None);
    assert!(
        c.healthy(NOW),
        "what cannot be asked does not block (Ready speaks for it)"
    );
}

#[test]
fn real_unit_states_decide_the_repair() {
    let host = |kubelet: &str, runtime: &str| {
        HostChecks::parse(
            &format!(
                "{}{}",
                section("kubelet", kubelet),
                section("runtime", runtime)
            ),
            &Paths::default(),
        )
    };
    let running = fixture!("systemctl-show-active.txt");
    let fine = host(running, running);
    assert_eq!((fine.repair(), codes(&fine).len()), (None, 0));
    assert!(fine.healthy(NOW));
    let stopped = host(fixture!("systemctl-show-stopped.txt"), running);
    assert_eq!(stopped.repair(), Some(Repair::RestartKubelet));
    assert_eq!(codes(&stopped), ["kubelet_inactive"]);
    assert!(!stopped.healthy(NOW));
    let failed = host(fixture!("systemctl-show-failed.txt"), running);
    assert_eq!(codes(&failed), ["kubelet_inactive"]);
    let looping = host(running, fixture!("systemctl-show-crash-looping.txt"));
    assert_eq!(codes(&looping), ["runtime_crash_looping"]);
    // The runtime first: the kubelet cannot be Ready without it.
    let both = host(
        fixture!("systemctl-show-stopped.txt"),
        fixture!("systemctl-show-crash-looping.txt"),
    );
    assert_eq!(both.repair(), Some(Repair::RestartRuntime));
    // A runtime unit of another name: not restarted, a hint to configure it.
    let missing = host(running, fixture!("systemctl-show-not-found.txt"));
    assert_eq!(missing.repair(), None);
    assert_eq!(codes(&missing), ["runtime_unit_not_found"]);
    assert!(
        !missing.healthy(NOW),
        "an unknown runtime is not a healthy one"
    );
    // A stopped kubelet on a full /var: report, do not restart.
    let full = HostChecks::parse(
        &format!(
            "{}@@oob df\nFilesystem 1024-blocks Used Available Capacity Mounted on\n/dev/sda3 100 99 1 99% /var\n@@rc 0\n",
            section("kubelet", fixture!("systemctl-show-stopped.txt"))
        ),
        &Paths::default(),
    );
    assert_eq!(full.repair(), None);
    assert!(codes(&full).contains(&"disk_full".to_owned()));
}

#[test]
fn a_read_only_var_is_found_in_real_proc_mounts() {
    let p = Paths::default();
    let rw = HostChecks::parse(&section("mounts", fixture!("proc-mounts.txt")), &p);
    assert!(rw.read_only.is_empty(), "{:?}", rw.read_only);
    let ro = HostChecks::parse(&section("mounts", fixture!("proc-mounts-var-ro.txt")), &p);
    assert_eq!(ro.read_only.len(), 1, "{:?}", ro.read_only);
    assert_eq!(ro.read_only[0].0, "/var");
    assert_eq!(codes(&ro), ["filesystem_read_only"]);
    // A later read-write mount over the same point is the one in effect.
    let remounted = read_only_mounts(
        "/dev/sda1 /var ext4 ro,relatime 0 0\n/dev/sda1 /var ext4 rw,relatime 0 0\n",
        &["/var"],
    );
    assert!(remounted.is_empty());
}

#[test]
fn the_certificate_date_from_real_openssl_output() {
    let at = parse_not_after(fixture!("openssl-enddate.txt")).unwrap();
    assert!(at > NOW, "recorded a year ahead");
    assert_eq!(
        parse_not_after("notAfter=Jan  1 00:00:00 1970 GMT"),
        Some(0)
    );
    assert_eq!(
        parse_not_after("notAfter=Feb 29 12:00:00 2028 GMT"),
        Some(1_835_438_400)
    );
    assert_eq!(
        parse_not_after(fixture!("openssl-enddate-missing.txt")),
        None
    );
    let cert = |at: i64| HostChecks {
        cert_not_after: Some(at),
        ..HostChecks::default()
    };
    assert_eq!(codes(&cert(NOW - 1)), ["kubelet_cert_expired"]);
    assert_eq!(codes(&cert(NOW + 3600)), ["kubelet_cert_expiring"]);
    assert!(codes(&cert(NOW + 30 * 86_400)).is_empty());
}

#[test]
fn oom_kills_of_the_kubelet_are_critical_and_counted_once() {
    let c = HostChecks::parse(
        &section("oom", fixture!("dmesg-oom-kubelet.txt")),
        &Paths::default(),
    );
    assert_eq!(c.oom_kills.len(), 1, "{:?}", c.oom_kills);
    assert_eq!(c.oom_kills[0].process, "kubelet");
    let f = c.findings(NOW);
    assert_eq!(
        (f[0].code.as_str(), f[0].severity),
        ("oom_kill", Level::Critical)
    );
    assert_eq!(c.repair(), Some(Repair::RestartKubelet));
}

#[test]
fn time_and_kubelet_journal() {
    let time = HostChecks::parse(
        &section("time", fixture!("timedatectl-show.txt")),
        &Paths::default(),
    );
    assert_eq!(time.time_synchronized, Some(false));
    // The kubelet's message as its source prints it (pkg/kubelet/pleg).
    let c = HostChecks::parse(
        "@@oob time\nNTP=yes\nNTPSynchronized=no\n@@rc 0\n@@oob kubelet-log\nI1128 00:00:01 kubelet.go:2420] \"Skipping pod synchronization\" err=\"PLEG is not healthy: pleg was last seen active 3m0s ago\"\n@@rc 0\n",
        &Paths::default(),
    );
    assert_eq!(
        codes(&c),
        ["time_not_synchronized", "kubelet_pleg_unhealthy"]
    );
}

#[test]
fn garbage_never_panics_and_finds_nothing() {
    for junk in [
        "",
        "@@oob",
        "@@oob \n@@rc",
        "@@oob df\n/ a b c d e f\n@@rc x",
        "@@oob pids\n0\n1 2 3 4/0 5\n@@rc 0",
        "@@oob cert\nnotAfter=Feb 31 99:99:99 2027 GMT\n@@rc 0",
        "@@oob oom\nKilled process (\n oom-kill:task=\n@@rc 0",
        "\u{0}\u{1}@@oob memory\nMemTotal: 0 kB\n",
    ] {
        let c = HostChecks::parse(junk, &Paths::default());
        let _ = c.findings(NOW);
        let _ = c.repair();
    }
}

#[test]
fn only_runtimes_whose_containers_outlive_a_restart_count_as_safe_to_restart() {
    let paths = |unit: &str| Paths {
        runtime_unit: unit.into(),
        ..Paths::default()
    };
    assert!(Paths::default().runtime_restart_keeps_containers());
    assert!(paths("crio.service").runtime_restart_keeps_containers());
    assert!(paths("containerd").runtime_restart_keeps_containers());
    assert!(!paths("docker.service").runtime_restart_keeps_containers());
    assert!(!paths("my-runtime.service").runtime_restart_keeps_containers());
}
