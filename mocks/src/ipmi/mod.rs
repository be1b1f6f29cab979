//! A stateful mock IPMI v2.0 BMC over UDP (RMCP+ cipher suites 3 and 17) with fault
//! injection: dropped, late and duplicated replies, truncated and garbage datagrams, a full
//! session table, and a BMC reset that forgets every session. Chassis power, a SEL, a GUID,
//! users with privilege limits (sessions start at USER, as on real BMCs).

mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use wire::{Inbound, SessionKeys, Suite};

/// A user of the mock BMC.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub password: String,
    /// 2 user, 3 operator, 4 administrator.
    pub max_privilege: u8,
}

/// How the mock is built.
#[derive(Debug, Clone)]
pub struct Config {
    pub users: Vec<User>,
    pub guid: [u8; 16],
    pub max_sessions: usize,
    /// Accept cipher suite 3 (17 is always accepted).
    pub suite3: bool,
    /// Time a power change takes to show in Get Chassis Status.
    pub power_delay: Duration,
    /// Sessions idle this long are dropped (real BMCs: about 60 s).
    pub session_idle: Duration,
    /// IANA enterprise number reported by Get Device ID (674 Dell, 11 HPE, …).
    pub manufacturer_id: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            users: vec![
                User {
                    name: "admin".into(),
                    password: "password".into(),
                    max_privilege: 4,
                },
                User {
                    name: "operator".into(),
                    password: "oppass".into(),
                    max_privilege: 3,
                },
                User {
                    name: "viewer".into(),
                    password: "viewpass".into(),
                    max_privilege: 2,
                },
            ],
            guid: *b"oob-mock-ipmi-01",
            max_sessions: 8,
            suite3: true,
            power_delay: Duration::from_millis(100),
            session_idle: Duration::from_secs(30),
            manufacturer_id: 0x00D94F,
        }
    }
}

/// Injected faults, applied to every reply the mock sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability that an inbound datagram is ignored.
    pub drop_in: f64,
    /// Probability that a reply is not sent.
    pub drop_out: f64,
    /// Probability that a reply is sent twice.
    pub duplicate: f64,
    /// Probability that a reply is held back by `late_ms`.
    pub late: f64,
    pub late_ms: u64,
    /// The next N replies are cut in half.
    pub truncate: u32,
    /// The next N replies are preceded by a datagram of random bytes.
    pub garbage: u32,
    /// Open Session answers "insufficient resources".
    pub session_table_full: bool,
}

/// Counters tests read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub sessions_opened: u32,
    pub sessions_closed: u32,
    /// Chassis Control codes in arrival order (0 off, 1 on, 2 cycle, 3 reset, 5 soft).
    pub chassis_controls: Vec<u8>,
    pub requests: u32,
}

#[derive(Debug)]
struct Session {
    console: u32,
    suite: Suite,
    user: Option<User>,
    rm: [u8; 16],
    rc: [u8; 16],
    role: u8,
    keys: Option<SessionKeys>,
    privilege: u8,
    out_seq: u32,
    last_seen: tokio::time::Instant,
}

#[derive(Debug)]
struct State {
    sessions: HashMap<u32, Session>,
    power: bool,
    /// Chassis Identify: 0 off, 1 on for an interval, 2 on until turned off.
    identify: u8,
    pending: Option<(bool, tokio::time::Instant)>,
    sel: Vec<[u8; 16]>,
    faults: Faults,
    counters: Counters,
}

/// Shared state of a running mock.
#[derive(Debug, Clone)]
pub struct MockIpmi {
    state: Arc<Mutex<State>>,
    config: Arc<Config>,
}

/// A running mock; dropping it stops the server.
pub struct RunningIpmi {
    pub mock: MockIpmi,
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for RunningIpmi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RunningIpmi {
    pub fn url(&self) -> String {
        format!("ipmi://{}", self.addr)
    }
}

fn seed_sel() -> Vec<[u8; 16]> {
    // (sensor type, sensor number, event dir/type, data1): PSU failure, uncorrectable ECC,
    // upper-critical temperature, processor IERR.
    [
        (0x08, 0x51, 0x6F, 0x01),
        (0x0C, 0x60, 0x6F, 0x01),
        (0x01, 0x30, 0x01, 0x59),
        (0x07, 0x10, 0x6F, 0x00),
    ]
    .iter()
    .enumerate()
    .map(|(i, (t, n, e, d))| {
        let id = (i + 1) as u16;
        let mut r = [0u8; 16];
        r[..2].copy_from_slice(&id.to_le_bytes());
        r[2] = 0x02;
        r[3..7].copy_from_slice(&1_763_800_000u32.to_le_bytes());
        r[7] = 0x20;
        r[9] = 0x04;
        r[10] = *t;
        r[11] = *n;
        r[12] = *e;
        r[13] = *d;
        r[14] = 0xFF;
        r[15] = 0xFF;
        r
    })
    .collect()
}

impl MockIpmi {
    /// Serve on `addr` (loopback only; port 0 for any).
    pub async fn start(config: Config, addr: SocketAddr) -> anyhow::Result<RunningIpmi> {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "mocks bind to loopback only, not {addr}"
        );
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let addr = socket.local_addr()?;
        let mock = Self {
            state: Arc::new(Mutex::new(State {
                sessions: HashMap::new(),
                power: true,
                identify: 0,
                pending: None,
                sel: seed_sel(),
                faults: Faults::default(),
                counters: Counters::default(),
            })),
            config: Arc::new(config),
        };
        let server = mock.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let replies = server.handle(&buf[..n]);
                for reply in replies {
                    server.send(&socket, peer, reply);
                }
            }
        });
        Ok(RunningIpmi { mock, addr, task })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// Activated sessions (RAKP completed) currently open. Half-open ones, left by a client
    /// that gave up during RAKP, expire after `session_idle` as on real BMCs.
    pub fn open_sessions(&self) -> usize {
        self.lock()
            .sessions
            .values()
            .filter(|x| x.keys.is_some())
            .count()
    }

    /// The BMC reboots: every session is forgotten.
    pub fn reset_bmc(&self) {
        self.lock().sessions.clear();
    }

    /// The locator LED: 0 off, 1 on for an interval, 2 on until turned off.
    pub fn identify(&self) -> u8 {
        self.lock().identify
    }

    pub fn power(&self) -> bool {
        let mut s = self.lock();
        settle(&mut s);
        s.power
    }

    pub fn set_power(&self, on: bool) {
        let mut s = self.lock();
        s.power = on;
        s.pending = None;
    }

    /// Send one reply, applying output faults.
    fn send(&self, socket: &Arc<UdpSocket>, peer: SocketAddr, mut reply: Vec<u8>) {
        let faults = self.lock().faults.clone();
        let mut rng = rand::rng();
        if rng.random_bool(faults.drop_out.clamp(0.0, 1.0)) {
            return;
        }
        let mut garbage = None;
        {
            let mut s = self.lock();
            if s.faults.truncate > 0 {
                s.faults.truncate -= 1;
                reply.truncate(reply.len() / 2);
            }
            if s.faults.garbage > 0 {
                s.faults.garbage -= 1;
                garbage = Some(
                    (0..rng.random_range(1..64))
                        .map(|_| rng.random())
                        .collect::<Vec<u8>>(),
                );
            }
        }
        let copies = if rng.random_bool(faults.duplicate.clamp(0.0, 1.0)) {
            2
        } else {
            1
        };
        let delay = rng
            .random_bool(faults.late.clamp(0.0, 1.0))
            .then(|| Duration::from_millis(faults.late_ms));
        let socket = socket.clone();
        tokio::spawn(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if let Some(g) = garbage {
                let _ = socket.send_to(&g, peer).await;
            }
            for _ in 0..copies {
                let _ = socket.send_to(&reply, peer).await;
            }
        });
    }

    /// Replies to one inbound datagram.
    fn handle(&self, datagram: &[u8]) -> Vec<Vec<u8>> {
        let mut s = self.lock();
        if rand::rng().random_bool(s.faults.drop_in.clamp(0.0, 1.0)) {
            return Vec::new();
        }
        s.counters.requests += 1;
        let parsed = wire::parse(datagram, |sid| {
            s.sessions
                .get(&sid)
                .and_then(|x| x.keys.as_ref())
                .map(|k| k.suite.auth_code_len())
        });
        let reply = match parsed {
            Some(Inbound::V15(m)) => self.v15(&m),
            Some(Inbound::V2 {
                ptype: 0x10,
                payload,
                ..
            }) => self.open_session(&mut s, &payload),
            Some(Inbound::V2 {
                ptype: 0x12,
                payload,
                ..
            }) => self.rakp1(&mut s, &payload),
            Some(Inbound::V2 {
                ptype: 0x14,
                payload,
                ..
            }) => self.rakp3(&mut s, &payload),
            Some(Inbound::V2 {
                ptype: 0x00,
                encrypted: true,
                session,
                payload,
                signed,
                auth_code: Some(code),
                ..
            }) => self.in_session(&mut s, session, &payload, &signed, &code),
            _ => None,
        };
        reply.into_iter().collect()
    }

    fn v15(&self, m: &[u8]) -> Option<Vec<u8>> {
        let (netfn, seq, cmd, _) = wire::request(m)?;
        let data = match (netfn, cmd) {
            // Get Channel Authentication Capabilities: v2.0 extended data, RMCP+ supported.
            (0x06, 0x38) => vec![0x01, 0x80 | 0x04, 0x04, 0x02, 0, 0, 0, 0],
            _ => return Some(wire::reply_v15(&wire::response(netfn, seq, cmd, 0xC1, &[]))),
        };
        Some(wire::reply_v15(&wire::response(netfn, seq, cmd, 0, &data)))
    }

    fn open_session(&self, s: &mut State, p: &[u8]) -> Option<Vec<u8>> {
        if p.len() < 32 {
            return None;
        }
        let tag = p[0];
        let console = u32::from_le_bytes(p[4..8].try_into().ok()?);
        let idle = self.config.session_idle;
        s.sessions.retain(|_, x| x.last_seen.elapsed() < idle);
        let suite = Suite::from_algorithms(p[12], p[20], p[28])
            .filter(|s| *s == Suite::Sha256 || self.config.suite3);
        let status = match suite {
            _ if s.faults.session_table_full || s.sessions.len() >= self.config.max_sessions => {
                0x01
            }
            None => 0x11,
            Some(_) => 0x00,
        };
        let mut r = vec![tag, status, 0x04, 0];
        r.extend_from_slice(&console.to_le_bytes());
        if let (0, Some(suite)) = (status, suite) {
            let id = loop {
                let id: u32 = rand::rng().random();
                if id != 0 && !s.sessions.contains_key(&id) {
                    break id;
                }
            };
            s.sessions.insert(
                id,
                Session {
                    console,
                    suite,
                    user: None,
                    rm: [0; 16],
                    rc: [0; 16],
                    role: 0,
                    keys: None,
                    privilege: 2,
                    out_seq: 0,
                    last_seen: tokio::time::Instant::now(),
                },
            );
            s.counters.sessions_opened += 1;
            r.extend_from_slice(&id.to_le_bytes());
            r.extend_from_slice(&p[8..32]);
        }
        Some(wire::reply_v2(0x11, 0, 0, &r, None))
    }

    fn rakp1(&self, s: &mut State, p: &[u8]) -> Option<Vec<u8>> {
        if p.len() < 28 {
            return None;
        }
        let tag = p[0];
        let bmc = u32::from_le_bytes(p[4..8].try_into().ok()?);
        let ulen = usize::from(p[27]);
        let name = p.get(28..28 + ulen)?;
        let session = s.sessions.get_mut(&bmc)?;
        let mut r = vec![tag, 0, 0, 0];
        r.extend_from_slice(&session.console.to_le_bytes());
        let user = self.config.users.iter().find(|u| u.name.as_bytes() == name);
        let role = p[24];
        let Some(user) = user.filter(|u| role & 0x0F <= u.max_privilege) else {
            r[1] = if user.is_none() { 0x0D } else { 0x09 };
            s.sessions.remove(&bmc);
            return Some(wire::reply_v2(0x13, 0, 0, &r, None));
        };
        // A retransmitted RAKP 1 (same Rm) gets the same Rc, so that a late first reply and
        // the second agree.
        if session.rm[..] != p[8..24] || session.rc == [0; 16] {
            session.rm.copy_from_slice(&p[8..24]);
            session.rc = rand::random();
        }
        session.role = role;
        session.user = Some(user.clone());
        let mut signed = session.console.to_le_bytes().to_vec();
        signed.extend_from_slice(&bmc.to_le_bytes());
        signed.extend_from_slice(&session.rm);
        signed.extend_from_slice(&session.rc);
        signed.extend_from_slice(&self.config.guid);
        signed.extend_from_slice(&[role, ulen as u8]);
        signed.extend_from_slice(name);
        r.extend_from_slice(&session.rc);
        r.extend_from_slice(&self.config.guid);
        r.extend_from_slice(&session.suite.hmac(user.password.as_bytes(), &signed));
        Some(wire::reply_v2(0x13, 0, 0, &r, None))
    }

    fn rakp3(&self, s: &mut State, p: &[u8]) -> Option<Vec<u8>> {
        if p.len() < 8 {
            return None;
        }
        let tag = p[0];
        let bmc = u32::from_le_bytes(p[4..8].try_into().ok()?);
        let session = s.sessions.get_mut(&bmc)?;
        let user = session.user.clone()?;
        let name = user.name.as_bytes();
        let mut signed = session.rc.to_vec();
        signed.extend_from_slice(&session.console.to_le_bytes());
        signed.extend_from_slice(&[session.role, name.len() as u8]);
        signed.extend_from_slice(name);
        let key = user.password.as_bytes();
        let mut r = vec![tag, 0, 0, 0];
        r.extend_from_slice(&session.console.to_le_bytes());
        if p.get(8..) != Some(&session.suite.hmac(key, &signed)[..]) {
            r[1] = 0x0F;
            s.sessions.remove(&bmc);
            return Some(wire::reply_v2(0x15, 0, 0, &r, None));
        }
        let mut sik_input = session.rm.to_vec();
        sik_input.extend_from_slice(&session.rc);
        sik_input.extend_from_slice(&[session.role, name.len() as u8]);
        sik_input.extend_from_slice(name);
        let sik = session.suite.hmac(key, &sik_input);
        let mut icv_input = session.rm.to_vec();
        icv_input.extend_from_slice(&bmc.to_le_bytes());
        icv_input.extend_from_slice(&self.config.guid);
        let icv = session.suite.hmac(&sik, &icv_input);
        r.extend_from_slice(&icv[..session.suite.auth_code_len()]);
        session.keys = Some(SessionKeys::new(session.suite, &sik));
        Some(wire::reply_v2(0x15, 0, 0, &r, None))
    }

    fn in_session(
        &self,
        s: &mut State,
        id: u32,
        payload: &[u8],
        signed: &[u8],
        code: &[u8],
    ) -> Option<Vec<u8>> {
        let (keys, console) = {
            let x = s.sessions.get_mut(&id)?;
            x.last_seen = tokio::time::Instant::now();
            (x.keys.clone()?, x.console)
        };
        if keys.suite.hmac(&keys.k1, signed)[..keys.suite.auth_code_len()] != *code {
            return None;
        }
        let message = wire::decrypt(&keys, payload)?;
        let (netfn, seq, cmd, data) = wire::request(&message)?;
        // The reply's session sequence number is taken before the command runs: Close
        // Session removes the session, and its reply still goes out under its keys with the
        // next number in order (a client that checks the window, like FreeIPMI, discards
        // anything else and waits for its timeout).
        let out_seq = {
            let x = s.sessions.get_mut(&id)?;
            x.out_seq = x.out_seq.wrapping_add(1);
            x.out_seq
        };
        let (cc, out) = self.command(s, id, netfn, cmd, &data);
        let message = wire::response(netfn, seq, cmd, cc, &out);
        Some(wire::reply_v2(
            0x00,
            console,
            out_seq,
            &message,
            Some(&keys),
        ))
    }

    /// One IPMI command in session `id`: (completion code, response data).
    fn command(&self, s: &mut State, id: u32, netfn: u8, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
        let privilege = s.sessions.get(&id).map_or(0, |x| x.privilege);
        let max = s
            .sessions
            .get(&id)
            .and_then(|x| x.user.as_ref())
            .map_or(0, |u| u.max_privilege.min(self.role_limit(s, id)));
        let operator = privilege >= 3;
        settle(s);
        match (netfn, cmd) {
            (0x06, 0x01) => {
                let m = self.config.manufacturer_id.to_le_bytes();
                (
                    0,
                    vec![
                        0x20, 0x01, 0x01, 0x10, 0x02, 0x9F, m[0], m[1], m[2], 0x42, 0x00,
                    ],
                )
            }
            (0x06, 0x04) => (0, vec![0x55, 0x00]),
            (0x06, 0x37) => (0, self.config.guid.to_vec()),
            (0x06, 0x3B) => match data.first() {
                Some(0) => (0, vec![privilege]),
                Some(&level) if (2..=max).contains(&level) => {
                    if let Some(x) = s.sessions.get_mut(&id) {
                        x.privilege = level;
                    }
                    (0, vec![level])
                }
                Some(_) => (0x81, Vec::new()),
                None => (0xC7, Vec::new()),
            },
            (0x06, 0x3C) => {
                let target = data
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes);
                if target.is_some_and(|t| s.sessions.remove(&t).is_some()) {
                    s.counters.sessions_closed += 1;
                    (0, Vec::new())
                } else {
                    (0x87, Vec::new())
                }
            }
            // Byte 4: the identify state is reported (bit 6) and what it is (bits 5:4).
            (0x00, 0x01) => (
                0,
                vec![u8::from(s.power), 0x00, 0x00, 0x40 | (s.identify << 4)],
            ),
            (0x00, 0x02 | 0x04) if !operator => (0xD4, Vec::new()),
            (0x00, 0x02) => self.chassis_control(s, data),
            // Chassis Identify: interval (default 15 s; 0 off), then Force Identify On.
            (0x00, 0x04) => {
                s.identify = match (data.first(), data.get(1)) {
                    (_, Some(f)) if f & 0x01 != 0 => 2,
                    (Some(0), _) => 0,
                    _ => 1,
                };
                (0, Vec::new())
            }
            (0x0A, 0x40) => {
                let n = (s.sel.len() as u16).to_le_bytes();
                (
                    0,
                    vec![0x51, n[0], n[1], 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0x0A],
                )
            }
            (0x0A, 0x42) => (0, vec![0x01, 0x00]),
            (0x0A, 0x43) => self.sel_entry(s, data),
            (0x0A, 0x47) if !operator => (0xD4, Vec::new()),
            (0x0A, 0x47) => {
                if data.get(2..5) != Some(b"CLR") {
                    return (0xCC, Vec::new());
                }
                if data.get(5) == Some(&0xAA) {
                    s.sel.clear();
                }
                (0, vec![0x01])
            }
            _ => (0xC1, Vec::new()),
        }
    }

    /// The privilege the session's RAKP role asked for (a session never exceeds it).
    fn role_limit(&self, s: &State, id: u32) -> u8 {
        s.sessions.get(&id).map_or(0, |x| match x.role & 0x0F {
            0 => 4,
            r => r,
        })
    }

    fn chassis_control(&self, s: &mut State, data: &[u8]) -> (u8, Vec<u8>) {
        let Some(&code) = data.first() else {
            return (0xC7, Vec::new());
        };
        let at = tokio::time::Instant::now() + self.config.power_delay;
        match code {
            0x00 => s.pending = Some((false, at)),
            0x01 => s.pending = Some((true, at)),
            0x02 | 0x03 => {
                s.power = false;
                s.pending = Some((true, at));
            }
            0x05 if s.power => s.pending = Some((false, at)),
            0x05 => {}
            _ => return (0xCC, Vec::new()),
        }
        s.counters.chassis_controls.push(code);
        (0, Vec::new())
    }

    fn sel_entry(&self, s: &State, data: &[u8]) -> (u8, Vec<u8>) {
        let Some(id) = data.get(2..4).map(|b| u16::from_le_bytes([b[0], b[1]])) else {
            return (0xC7, Vec::new());
        };
        let index = match id {
            0x0000 => 0,
            0xFFFF => s.sel.len().saturating_sub(1),
            id => match s
                .sel
                .iter()
                .position(|r| u16::from_le_bytes([r[0], r[1]]) == id)
            {
                Some(i) => i,
                None => return (0xCB, Vec::new()),
            },
        };
        let Some(record) = s.sel.get(index) else {
            return (0xCB, Vec::new());
        };
        let next = s
            .sel
            .get(index + 1)
            .map_or(0xFFFF, |r| u16::from_le_bytes([r[0], r[1]]));
        let mut out = next.to_le_bytes().to_vec();
        out.extend_from_slice(record);
        (0, out)
    }
}

fn settle(s: &mut State) {
    if let Some((on, at)) = s.pending {
        if tokio::time::Instant::now() >= at {
            s.power = on;
            s.pending = None;
        }
    }
}
