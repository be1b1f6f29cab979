//! Every default deadline in one place, each with the reason for its value.
//!
//! Callers own deadlines for waits; these are the defaults they start from. Nothing here
//! talks to anything.

use std::time::Duration;

/// TCP + TLS connect to a BMC. BMCs on a healthy management network answer in milliseconds;
/// five seconds tolerates a congested switch without hiding a dead BMC for long.
pub const BMC_CONNECT: Duration = Duration::from_secs(5);

/// One HTTP request to a BMC, headers and body. Some BMCs (iLO, iDRAC) take several seconds
/// to render large collections; 30 s is what ipmitool/Redfish tools commonly allow.
pub const BMC_REQUEST: Duration = Duration::from_secs(30);

/// The longest `Retry-After` we honour from a 503. A BMC asking for more is treated as down
/// for this call; the caller retries on its own schedule.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(10);

/// How many times a retriable request (idempotent GET, or a 503 with `Retry-After`) is tried
/// in total.
pub const BMC_ATTEMPTS: u32 = 3;

/// First back-off between retries; doubled each attempt, with jitter.
pub const BMC_BACKOFF: Duration = Duration::from_millis(250);

/// How long an idle connection to a BMC is kept for reuse: long enough for the back-to-back
/// requests of one look or one power action, short enough that a fleet does not keep
/// connections open between looks (each holds tens of KiB of buffers; 10,000 of them would
/// also exhaust the open-files limit).
pub const BMC_IDLE: Duration = Duration::from_secs(1);

/// Response body cap. The largest collection in the recorded vendor trees (Lenovo XCC's
/// 1,152-entry event log) is about 2 MiB; 16 MiB leaves room and still bounds memory per call.
pub const BODY_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Default time for a power action to be observed in the target state, when the profile does
/// not say. sushy-emulator takes up to 11 s; real servers take 10-60 s to power off gracefully.
pub const POWER_VERIFY: Duration = Duration::from_secs(120);

/// Default interval between power-state polls while verifying an action.
pub const POWER_POLL: Duration = Duration::from_millis(1000);

/// Most log entries read from one LogService (pages followed via `Members@odata.nextLink`).
pub const SEL_MAX_ENTRIES: usize = 5000;
/// A whole SEL read in a BMC look (each request has its own deadline; a log of thousands of
/// entries fetched one by one must not hold the machine's round for hours). Past it the
/// look says the SEL read failed and keeps the baseline.
pub const SEL_READ: Duration = Duration::from_secs(120);

/// Most pages followed when reading a paged collection, whatever their size.
pub const MAX_PAGES: usize = 200;

/// SSH connect, key exchange and authentication to a host. Hosts that are up answer in well
/// under a second; ten seconds allows a loaded host without waiting long on a dead one.
pub const SSH_CONNECT: Duration = Duration::from_secs(10);

/// Waiting for one Kubernetes API response. kube-rs sets no read timeout by default (for
/// exec/attach sessions, which oob does not use); an API server that accepts a request and
/// never answers would otherwise stall a ladder round for ever. Reads here are small single
/// objects or one node's pods: 30 s is generous.
pub const KUBE_READ: Duration = Duration::from_secs(30);

/// How long a per-node lock (Lease) lives when its holder dies mid-action (the default of
/// `service.node_lock_s`). The holder renews it every third of this while a step runs (a
/// verified power cycle, a drain), so it no longer has to outlast the slowest step: a
/// crashed holder blocks the node at most a minute, and an API server unreachable for up to
/// ~40 s does not lose a lock in use.
pub const NODE_LOCK: Duration = Duration::from_secs(60);

/// The longest wait for a BMC's turn at the governor before a power step gives up.
pub const GOVERNOR_WAIT: Duration = Duration::from_secs(60);

/// The leader lease's duration: a new leader takes over at most this long after the old one
/// stopped renewing (it renews every probe interval).
pub const LEADER_LEASE: Duration = Duration::from_secs(15);

/// Between the quick re-probes that tell a flap from an outage on entering Confirm.
pub const REPROBE_SPACING: Duration = Duration::from_millis(400);

/// How often `oob reboot` looks at the node while it waits for the reboot.
pub const REBOOT_POLL: Duration = Duration::from_secs(2);
