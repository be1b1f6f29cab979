//! The runbook's host checks: what an operator looks at over SSH when a node goes NotReady,
//! as one read-only script (every command under the remote `timeout`, one round trip), its
//! output split into sections, each section parsed, and the result turned into findings with
//! a code, a severity, the evidence line and a recommended fix. Also the one question the
//! ladder asks of them: would restarting a unit help ([`HostChecks::repair`])?
//!
//! Parsers take untrusted bytes: a missing tool, a timed-out command or garbage leaves that
//! check unknown (no finding), never a panic (fuzzed).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Finding, Level};

/// The remote limit on each command, in seconds.
const COMMAND_SECONDS: u64 = 10;

/// The script's sections.
const SECTIONS: u64 = 12;

/// How long the whole script may take: every command is under the remote `timeout`.
pub const SCRIPT_LIMIT: Duration = Duration::from_secs(SECTIONS * COMMAND_SECONDS + 10);

/// Where the checks look on the host (`[machines.ssh.checks]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Paths {
    /// The container runtime's systemd unit.
    pub runtime_unit: String,
    /// The kubelet's root directory (its filesystem is checked with `/` and `/var`).
    pub kubelet_root: String,
    /// The kubelet's client certificate.
    pub kubelet_cert: String,
}

impl Paths {
    /// Whether restarting the runtime leaves running containers (an etcd static pod among
    /// them) up: containerd and CRI-O keep them under their shims; Docker without
    /// live-restore, or an unknown runtime, may not.
    pub fn runtime_restart_keeps_containers(&self) -> bool {
        matches!(
            self.runtime_unit.trim_end_matches(".service"),
            "containerd" | "crio" | "cri-o"
        )
    }
}

impl Default for Paths {
    fn default() -> Self {
        Self {
            runtime_unit: "containerd.service".into(),
            kubelet_root: "/var/lib/kubelet".into(),
            kubelet_cert: "/var/lib/kubelet/pki/kubelet-client-current.pem".into(),
        }
    }
}

/// Shell-quote one argument (the SSH commands' one quoting rule).
pub fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The check script: read-only, each command under `timeout`, each section introduced by
/// `@@oob NAME` and closed by `@@rc CODE`. `since` is how far back the kernel and kubelet
/// logs are read (a `journalctl --since` value: `@EPOCH` for "since the last look").
pub fn script(p: &Paths, since: &str) -> String {
    let t = format!("timeout {COMMAND_SECONDS}");
    let unit = |u: &str| {
        format!(
            "{t} systemctl show -p LoadState,ActiveState,SubState,NRestarts,ExecMainStatus,Result {}",
            q(u)
        )
    };
    let mounts = format!("/ /var {}", q(&p.kubelet_root));
    let since = q(since);
    let sections = [
        ("kubelet", unit("kubelet.service")),
        ("runtime", unit(&p.runtime_unit)),
        ("cri", format!("{t} crictl --timeout 5s version")),
        ("df", format!("{t} df -P {mounts}")),
        ("df-inodes", format!("{t} df -iP {mounts}")),
        ("pids", "cat /proc/sys/kernel/pid_max /proc/loadavg".into()),
        ("memory", "grep -E '^(MemTotal|MemAvailable):' /proc/meminfo".into()),
        ("time", format!("{t} timedatectl show")),
        (
            "oom",
            format!(
                "{t} journalctl -k --no-pager -q -o short-iso --since {since} \
                 | grep -E 'Out of memory|oom-kill:|Killed process' | tail -n 20"
            ),
        ),
        ("mounts", "cat /proc/mounts".into()),
        (
            "cert",
            format!("{t} openssl x509 -noout -enddate -in {}", q(&p.kubelet_cert)),
        ),
        (
            "kubelet-log",
            format!(
                "{t} journalctl -u kubelet.service --no-pager -q -o cat --since {since} \
                 | grep -E 'PLEG is not healthy|container runtime is down|runtime network not ready|ContainerGCFailed' \
                 | tail -n 20"
            ),
        ),
    ];
    let mut s = String::from("export LC_ALL=C\n");
    for (name, command) in sections {
        s.push_str(&format!(
            "echo '@@oob {name}'; ( {command} ) 2>&1; echo \"@@rc $?\"\n"
        ));
    }
    s
}

/// One section of the script's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    pub name: &'a str,
    pub text: &'a str,
    /// The exit status; `None` when the output was cut before it.
    pub rc: Option<i32>,
}

/// Split the script's output into its sections (text before the first marker is ignored).
pub fn sections(output: &str) -> Vec<Section<'_>> {
    let mut out = Vec::new();
    let mut rest = output;
    while let Some(at) = rest.find("@@oob ") {
        if at > 0 && !rest[..at].ends_with('\n') {
            // A marker inside a line is output, not ours.
            rest = &rest[at + 6..];
            continue;
        }
        let after = &rest[at + 6..];
        let (name, body) = after.split_once('\n').unwrap_or((after, ""));
        let end = body.find("\n@@oob ").map_or(body.len(), |e| e + 1);
        let section = &body[..end];
        let (text, rc) = match section.rfind("@@rc ") {
            Some(r) if r == 0 || section[..r].ends_with('\n') => (
                &section[..r],
                section[r + 5..]
                    .lines()
                    .next()
                    .and_then(|c| c.trim().parse().ok()),
            ),
            _ => (section, None),
        };
        out.push(Section {
            name: name.trim(),
            text,
            rc,
        });
        rest = &body[end..];
    }
    out
}

/// A systemd unit's state (`systemctl show -p …`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitState {
    /// `loaded`, or `not-found` when the host has no such unit.
    pub load: String,
    pub active: String,
    pub sub: String,
    pub restarts: Option<u64>,
    pub exit_status: Option<i64>,
    pub result: Option<String>,
}

impl UnitState {
    pub fn is_active(&self) -> bool {
        self.active == "active" && self.sub == "running"
    }

    /// The host has no such unit (another runtime, another name): nothing to restart.
    pub fn not_found(&self) -> bool {
        self.load == "not-found"
    }

    /// Installed and not running, or crash looping: what a restart may fix.
    pub fn down(&self) -> bool {
        !self.not_found() && (!self.is_active() || self.crash_looping())
    }

    /// Crash looping: systemd is waiting to restart it, or it restarted several times.
    pub fn crash_looping(&self) -> bool {
        self.sub == "auto-restart"
            || self.active == "activating" && self.restarts.is_some_and(|n| n > 0)
            || self.restarts.is_some_and(|n| n >= 3)
    }

    /// `systemctl show` output; `None` when ActiveState is missing (no systemd, no answer).
    pub fn parse(text: &str) -> Option<Self> {
        let mut u = Self::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "LoadState" => u.load = v.to_owned(),
                "ActiveState" => u.active = v.to_owned(),
                "SubState" => u.sub = v.to_owned(),
                "NRestarts" => u.restarts = v.parse().ok(),
                "ExecMainStatus" => u.exit_status = v.parse().ok(),
                "Result" => u.result = Some(v.to_owned()),
                _ => {}
            }
        }
        (!u.active.is_empty()).then_some(u)
    }

    fn line(&self) -> String {
        format!(
            "LoadState={} ActiveState={} SubState={} NRestarts={} ExecMainStatus={} Result={}",
            self.load,
            self.active,
            self.sub,
            self.restarts.map_or("?".into(), |n| n.to_string()),
            self.exit_status.map_or("?".into(), |n| n.to_string()),
            self.result.as_deref().unwrap_or("?"),
        )
    }
}

/// One line of `df -P` or `df -iP`: the filesystem, its size and use (blocks or inodes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub filesystem: String,
    pub mount: String,
    pub total: u64,
    pub used: u64,
    pub available: u64,
    /// The line as printed, for the evidence.
    pub line: String,
}

impl Usage {
    /// Percent in use of what the unprivileged can use (used / (used + available)), as df
    /// computes its `Capacity` column; `None` for a filesystem without a count (inodes on
    /// btrfs print 0 of 0).
    pub fn percent(&self) -> Option<u64> {
        let usable = self.used.checked_add(self.available)?;
        (usable > 0).then(|| self.used.saturating_mul(100).div_ceil(usable))
    }

    /// `df -P` / `df -iP` output: header, then one line per filesystem (POSIX format: six
    /// columns, the mount point last and possibly with spaces). Lines that are not rows
    /// (errors about a missing path) are skipped.
    pub fn parse_df(text: &str) -> Vec<Self> {
        let mut out: Vec<Self> = Vec::new();
        for line in text.lines() {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 6 {
                continue;
            }
            let (Ok(total), Ok(used), Ok(available)) =
                (cols[1].parse(), cols[2].parse(), cols[3].parse())
            else {
                continue;
            };
            if !cols[4].ends_with('%') && cols[4] != "-" {
                continue;
            }
            // The mount point is everything after the fifth column.
            let mount = cols[5..].join(" ");
            if out.iter().any(|u| u.mount == mount) {
                continue;
            }
            out.push(Self {
                filesystem: cols[0].to_owned(),
                mount,
                total,
                used,
                available,
                line: line.trim().to_owned(),
            });
        }
        out
    }
}

/// An OOM kill in the kernel log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomKill {
    pub process: String,
    pub pid: Option<u64>,
    pub line: String,
}

/// Kernel log lines: `Out of memory: Killed process 1234 (kubelet) …`, `Memory cgroup out of
/// memory: Killed process …`, `oom-kill:…,task=kubelet,pid=1234,uid=0`; one kill per pid.
pub fn parse_oom(text: &str) -> Vec<OomKill> {
    let mut out: Vec<OomKill> = Vec::new();
    for line in text.lines() {
        let found = if let Some(rest) = line.split("Killed process ").nth(1) {
            let pid = rest.split_whitespace().next().and_then(|p| p.parse().ok());
            let process = rest
                .split_once('(')
                .and_then(|(_, r)| r.split_once(')'))
                .map(|(name, _)| name.to_owned());
            process.map(|process| (process, pid))
        } else if let Some(rest) = line.split("oom-kill:").nth(1) {
            let field = |k: &str| {
                rest.split(',')
                    .find_map(|kv| kv.trim().strip_prefix(k))
                    .map(str::to_owned)
            };
            field("task=").map(|process| (process, field("pid=").and_then(|p| p.parse().ok())))
        } else {
            None
        };
        let Some((process, pid)) = found else {
            continue;
        };
        if pid.is_some() && out.iter().any(|k| k.pid == pid) {
            continue;
        }
        out.push(OomKill {
            process,
            pid,
            line: line.trim().to_owned(),
        });
    }
    out
}

/// Mount points among `watched` that `/proc/mounts` shows read-only: `(mount, line)`.
pub fn read_only_mounts(text: &str, watched: &[&str]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(mount), Some(opts)) = (cols.get(1), cols.get(3)) else {
            continue;
        };
        if !watched.contains(mount) {
            continue;
        }
        // The last mount on a point is the one in effect.
        out.retain(|(m, _)| m != mount);
        if opts.split(',').any(|o| o == "ro") {
            out.push(((*mount).to_owned(), line.trim().to_owned()));
        }
    }
    out
}

/// Seconds since the Unix epoch of OpenSSL's `notAfter=Nov 27 23:56:47 2027 GMT`.
pub fn parse_not_after(text: &str) -> Option<i64> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("notAfter="))?;
    let mut it = line.split_whitespace();
    let month = match it.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let day: i64 = it.next()?.parse().ok()?;
    let mut hms = it.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let year: i64 = it.next()?.parse().ok()?;
    if it.next()? != "GMT"
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&s)
        || !(1970..=9999).contains(&year)
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What the checks found on the host; `None` fields are checks that gave no answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChecks {
    pub kubelet: Option<UnitState>,
    pub runtime: Option<UnitState>,
    /// The CRI answered `crictl version` (`None`: crictl missing or no answer at all).
    pub cri_answering: Option<bool>,
    pub cri_evidence: Option<String>,
    pub disk: Vec<Usage>,
    pub inodes: Vec<Usage>,
    /// Tasks (threads) in use and the kernel's `pid_max`.
    pub pids: Option<(u64, u64)>,
    /// `MemAvailable` and `MemTotal`, kB.
    pub memory: Option<(u64, u64)>,
    pub time_synchronized: Option<bool>,
    pub oom_kills: Vec<OomKill>,
    /// Watched mount points that are read-only, with their `/proc/mounts` line.
    pub read_only: Vec<(String, String)>,
    /// The kubelet client certificate's notAfter, seconds since the epoch.
    pub cert_not_after: Option<i64>,
    /// Kubelet journal lines about PLEG or the runtime.
    pub kubelet_log: Vec<String>,
}

/// What a restart can fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Repair {
    RestartKubelet,
    RestartRuntime,
}

impl Repair {
    /// `restart-kubelet`, as in timelines.
    pub fn name(self) -> &'static str {
        match self {
            Self::RestartKubelet => "restart-kubelet",
            Self::RestartRuntime => "restart-runtime",
        }
    }

    /// The unit to restart.
    pub fn unit(self, paths: &Paths) -> &str {
        match self {
            Self::RestartKubelet => "kubelet.service",
            Self::RestartRuntime => &paths.runtime_unit,
        }
    }
}

impl HostChecks {
    /// Parse the script's whole output.
    pub fn parse(output: &str, paths: &Paths) -> Self {
        let mut c = Self::default();
        for s in sections(output) {
            let ok = s.rc == Some(0);
            match s.name {
                "kubelet" => c.kubelet = UnitState::parse(s.text),
                "runtime" => c.runtime = UnitState::parse(s.text),
                "cri" => {
                    // 127: no crictl; 124: the timeout killed it (no answer is an answer).
                    c.cri_answering = match s.rc {
                        Some(127) | None => None,
                        _ => Some(ok && s.text.contains("RuntimeName")),
                    };
                    c.cri_evidence = s
                        .text
                        .lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .map(str::to_owned);
                }
                "df" => c.disk = Usage::parse_df(s.text),
                "df-inodes" => c.inodes = Usage::parse_df(s.text),
                "pids" => {
                    let mut lines = s.text.lines();
                    let max = lines.next().and_then(|l| l.trim().parse::<u64>().ok());
                    let tasks = lines
                        .next()
                        .and_then(|l| l.split_whitespace().nth(3))
                        .and_then(|rt| rt.split_once('/'))
                        .and_then(|(_, total)| total.parse::<u64>().ok());
                    c.pids = tasks.zip(max).filter(|(_, max)| *max > 0);
                }
                "memory" => {
                    let kb = |key: &str| {
                        s.text.lines().find_map(|l| {
                            l.strip_prefix(key)?
                                .split_whitespace()
                                .next()?
                                .parse::<u64>()
                                .ok()
                        })
                    };
                    c.memory = kb("MemAvailable:")
                        .zip(kb("MemTotal:"))
                        .filter(|(_, t)| *t > 0);
                }
                "time" => {
                    c.time_synchronized = s.text.lines().find_map(|l| {
                        match l.trim().strip_prefix("NTPSynchronized=")? {
                            "yes" => Some(true),
                            "no" => Some(false),
                            _ => None,
                        }
                    });
                }
                "oom" => c.oom_kills = parse_oom(s.text),
                "mounts" => {
                    c.read_only =
                        read_only_mounts(s.text, &["/", "/var", paths.kubelet_root.as_str()]);
                }
                "cert" => c.cert_not_after = parse_not_after(s.text),
                "kubelet-log" => {
                    c.kubelet_log = s
                        .text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                _ => {}
            }
        }
        c
    }

    /// The problems no restart fixes: a full disk or inode table, PID exhaustion, a
    /// read-only filesystem.
    fn restart_cannot_help(&self) -> bool {
        let full = |u: &[Usage]| {
            u.iter()
                .any(|u| u.percent().is_some_and(|p| p >= CRITICAL_PCT))
        };
        full(&self.disk)
            || full(&self.inodes)
            || self
                .pids
                .is_some_and(|(t, m)| t.saturating_mul(100) >= m.saturating_mul(CRITICAL_PCT))
            || !self.read_only.is_empty()
    }

    /// What restarting would fix: the runtime first when it is down (the kubelet cannot be
    /// Ready without it), else the kubelet when it is down, crash looping, OOM-killed or
    /// reporting PLEG. `None` when a unit is fine or unknown, or when the host has a
    /// problem no restart fixes (report it instead).
    pub fn repair(&self) -> Option<Repair> {
        if self.restart_cannot_help() {
            return None;
        }
        let killed = |names: &[&str]| {
            self.oom_kills
                .iter()
                .any(|k| names.contains(&k.process.as_str()))
        };
        let down = |u: &Option<UnitState>| u.as_ref().is_some_and(UnitState::down);
        if down(&self.runtime)
            || self.cri_answering == Some(false)
            || killed(&["containerd", "crio", "dockerd"])
        {
            return Some(Repair::RestartRuntime);
        }
        if down(&self.kubelet) || killed(&["kubelet"]) || !self.kubelet_log.is_empty() {
            return Some(Repair::RestartKubelet);
        }
        None
    }

    /// Healthy enough to uncordon (the node is Ready as well): neither the kubelet nor the
    /// runtime is known to be down, crash looping or missing, the CRI answers where it can
    /// be asked, and no finding is critical. A unit that cannot be asked (no systemd) does
    /// not block: Ready speaks for the kubelet then.
    pub fn healthy(&self, now_epoch: i64) -> bool {
        let fine = |u: &Option<UnitState>| u.as_ref().is_none_or(|u| !u.down() && !u.not_found());
        fine(&self.kubelet)
            && fine(&self.runtime)
            && self.cri_answering != Some(false)
            && !self
                .findings(now_epoch)
                .iter()
                .any(|f| f.severity == Level::Critical)
    }

    /// The critical findings no restart or reboot fixes ([`NO_RESTART_FIXES`]).
    pub fn blocking(&self, now_epoch: i64) -> Vec<Finding> {
        self.findings(now_epoch)
            .into_iter()
            .filter(|f| {
                f.severity == Level::Critical && NO_RESTART_FIXES.contains(&f.code.as_str())
            })
            .collect()
    }

    /// What the verdict needs of the checks.
    pub fn look(&self, now_epoch: i64) -> crate::verdict::HostLook {
        crate::verdict::HostLook {
            repair: self.repair(),
            blocking: self.blocking(now_epoch),
            critical: self
                .findings(now_epoch)
                .into_iter()
                .filter(|f| f.severity == Level::Critical)
                .map(|f| f.detail)
                .collect(),
        }
    }

    /// Every problem as a finding with its evidence and the recommended fix. `now_epoch`
    /// judges the certificate.
    pub fn findings(&self, now_epoch: i64) -> Vec<Finding> {
        let mut out = Vec::new();
        for (name, unit, restart) in [
            ("kubelet", &self.kubelet, "systemctl restart kubelet"),
            (
                "runtime",
                &self.runtime,
                "systemctl restart containerd (or the configured runtime unit)",
            ),
        ] {
            let Some(u) = unit else { continue };
            if u.not_found() {
                out.push(
                    Finding::new(
                        Level::Warning,
                        &format!("{name}_unit_not_found"),
                        format!("the host has no such {name} unit: {}", u.line()),
                    )
                    .fix("name the host's unit in [machines.ssh.checks] (runtime_unit)"),
                );
            } else if u.crash_looping() {
                out.push(
                    Finding::new(
                        Level::Critical,
                        &format!("{name}_crash_looping"),
                        format!("{name} keeps restarting: {}", u.line()),
                    )
                    .value(u.restarts.unwrap_or(0))
                    .fix(format!(
                        "read `journalctl -u` for the unit's last error, fix it, then {restart}"
                    )),
                );
            } else if !u.is_active() {
                out.push(
                    Finding::new(
                        Level::Critical,
                        &format!("{name}_inactive"),
                        format!("{name} is not running: {}", u.line()),
                    )
                    .fix(restart),
                );
            }
        }
        if self.cri_answering == Some(false) {
            out.push(
                Finding::new(
                    Level::Critical,
                    "runtime_not_answering",
                    format!("the CRI does not answer `crictl version`: {}", self.cri_evidence.as_deref().unwrap_or("no output")),
                )
                .fix("systemctl restart containerd (or the configured runtime unit); check its socket"),
            );
        }
        for (what, code, rows) in [
            ("space", "disk", &self.disk),
            ("inodes", "inodes", &self.inodes),
        ] {
            for u in rows.iter() {
                let Some(pct) = u.percent() else { continue };
                let level = if pct >= CRITICAL_PCT {
                    Level::Critical
                } else if pct >= WARNING_PCT {
                    Level::Warning
                } else {
                    continue;
                };
                out.push(
                    Finding::new(level, &format!("{code}_full"), format!("{} {pct}% of {what} used: {}", u.mount, u.line))
                        .value(pct)
                        .component(u.mount.clone())
                        .fix(if code == "disk" {
                            "free space (container images: `crictl rmi --prune`; logs: `journalctl --vacuum-size`); a reboot does not help"
                        } else {
                            "find the directory with millions of small files and remove them; a reboot does not help"
                        }),
                );
            }
        }
        if let Some((tasks, max)) = self.pids {
            let pct = tasks.saturating_mul(100) / max.max(1);
            if pct >= WARNING_PCT {
                let level = if pct >= CRITICAL_PCT {
                    Level::Critical
                } else {
                    Level::Warning
                };
                out.push(
                    Finding::new(level, "pids_exhausted", format!("{tasks} tasks of pid_max {max} ({pct}%)"))
                        .value(pct)
                        .fix("find the process leaking threads or processes (`ps -eLf`), set pod PID limits; a reboot only postpones it"),
                );
            }
        }
        if let Some((available, total)) = self.memory {
            let pct = available.saturating_mul(100) / total.max(1);
            if pct < 10 {
                let level = if pct < 5 {
                    Level::Critical
                } else {
                    Level::Warning
                };
                out.push(
                    Finding::new(level, "memory_low", format!("MemAvailable {available} kB of {total} kB ({pct}%)"))
                        .value(pct)
                        .fix("find the pods without memory limits; check the kubelet's eviction thresholds and system-reserved"),
                );
            }
        }
        if self.time_synchronized == Some(false) {
            out.push(
                Finding::new(Level::Warning, "time_not_synchronized", "timedatectl: NTPSynchronized=no")
                    .fix("check the NTP service (chrony or systemd-timesyncd) and its servers: certificates and etcd need the right time"),
            );
        }
        for k in &self.oom_kills {
            let vital = ["kubelet", "containerd", "crio", "dockerd"].contains(&k.process.as_str());
            out.push(
                Finding::new(if vital { Level::Critical } else { Level::Warning }, "oom_kill", format!("the OOM killer took {}: {}", k.process, k.line))
                    .component(k.process.clone())
                    .fix(if vital {
                        "restart the unit; reserve memory for the system (kubelet --system-reserved) so it is not taken again"
                    } else {
                        "set or raise the memory limit of the workload that was killed"
                    }),
            );
        }
        for (mount, line) in &self.read_only {
            out.push(
                Finding::new(Level::Critical, "filesystem_read_only", format!("{mount} is mounted read-only: {line}"))
                    .component(mount.clone())
                    .fix("the kernel remounted it after I/O errors: check the disk (SMART, dmesg); fsck and a reboot, or replace the disk"),
            );
        }
        if let Some(not_after) = self.cert_not_after {
            let left = not_after.saturating_sub(now_epoch);
            let level = if left <= 0 {
                Some((
                    Level::Critical,
                    "kubelet_cert_expired",
                    "has expired".to_owned(),
                ))
            } else if left < 7 * 86_400 {
                Some((
                    Level::Warning,
                    "kubelet_cert_expiring",
                    format!("expires in {} h", left / 3600),
                ))
            } else {
                None
            };
            if let Some((level, code, what)) = level {
                out.push(
                    Finding::new(level, code, format!("the kubelet's client certificate {what}"))
                        .value(not_after)
                        .fix("check the kubelet's certificate rotation (rotateCertificates) and pending CSRs; `kubeadm certs renew` on control-plane nodes"),
                );
            }
        }
        if let Some(first) = self.kubelet_log.first() {
            let pleg = self
                .kubelet_log
                .iter()
                .any(|l| l.contains("PLEG is not healthy"));
            out.push(
                Finding::new(
                    Level::Critical,
                    if pleg {
                        "kubelet_pleg_unhealthy"
                    } else {
                        "kubelet_runtime_errors"
                    },
                    format!(
                        "the kubelet's journal ({} lines): {first}",
                        self.kubelet_log.len()
                    ),
                )
                .value(self.kubelet_log.len())
                .fix("the container runtime is stuck or overloaded: restart it, then the kubelet"),
            );
        }
        out
    }
}

/// Findings no restart or reboot fixes: a person must free the disk, find the leak or
/// replace the drive, so the node is drained and reported rather than rebooted.
pub const NO_RESTART_FIXES: [&str; 4] = [
    "disk_full",
    "inodes_full",
    "pids_exhausted",
    "filesystem_read_only",
];

/// Use at or above which a disk, inode table or PID space counts as full.
const CRITICAL_PCT: u64 = 95;
/// Use at or above which it is worth a warning.
const WARNING_PCT: u64 = 85;

#[cfg(test)]
mod tests;
