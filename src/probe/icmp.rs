//! The ICMP engine: one socket per address family for the whole fleet, a thread of its own
//! that drains replies as they arrive (a busy async runtime never lets the socket's buffer
//! overflow), replies matched to their echo by address, identifier and sequence number, and
//! a deadline per echo. Raw sockets as root or with CAP_NET_RAW, else the kernel's datagram
//! "ping" sockets where `net.ipv4.ping_group_range` allows (the kernel then owns the
//! identifier, and matching is by address and sequence number).
//!
//! Replies are read either by a thread of the engine's own ([`Receiving::Thread`], for the
//! service: its runtime is busy with rounds, BMC and API calls) or by a task on the runtime
//! that sends ([`Receiving::Task`], for a command that does nothing but ping: a reply then
//! wakes one thread, not a reader that wakes a worker, which halves the context switches
//! that are most of a probe's CPU time).
//!
//! The round trip runs from right before the send to the moment the reader read the reply.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::oneshot;

/// The receive buffer asked for: 4 MiB holds about 5,000 replies (a kernel buffer entry
/// costs ~768 bytes per small packet), a quarter second of a 10,000-machine fleet's
/// echoes even if the receiving thread stalled.
const RECEIVE_BUFFER: usize = 4 << 20;

/// How often the receiving thread looks whether its engine is gone.
const RECEIVE_POLL: Duration = Duration::from_millis(200);

/// The longest a send may block (a full send buffer): the echo is then lost, not the task.
const SEND_LIMIT: Duration = Duration::from_millis(20);

/// Echo payload: a per-engine token, so that replies to another program's echoes (same
/// host, identifier and sequence by chance) are not taken for ours.
const PAYLOAD: usize = 16;

/// What came back for an echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Reply(Instant),
    /// An ICMP error quoting our echo (destination unreachable, time exceeded): the
    /// opposite of an answer.
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    addr: IpAddr,
    /// 0 for datagram sockets (the kernel sets the identifier).
    ident: u16,
    seq: u16,
}

type Waiters = Mutex<HashMap<Key, oneshot::Sender<Answer>>>;

fn lock(w: &Waiters) -> MutexGuard<'_, HashMap<Key, oneshot::Sender<Answer>>> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// The socket, as its reader needs it.
enum Sock {
    /// Blocking, with a read timeout: read by the engine's thread.
    Blocking(UdpSocket),
    /// Non-blocking, registered with the runtime's I/O driver: read by a task.
    Driven(tokio::net::UdpSocket),
}

impl Sock {
    fn send_to(&self, packet: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        match self {
            Self::Blocking(s) => s.send_to(packet, to),
            // A full send buffer fails at once instead of after SEND_LIMIT: the echo is
            // lost either way.
            Self::Driven(s) => s.try_send_to(packet, to),
        }
    }
}

/// What the sending side and the reader share.
struct Shared {
    socket: Sock,
    raw: bool,
    v6: bool,
    token: [u8; PAYLOAD],
    waiters: Waiters,
    closed: AtomicBool,
}

/// Who reads the replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiving {
    /// A thread of the engine's own, blocked in `recv_from`.
    Thread,
    /// A task on the current tokio runtime, woken by its I/O driver.
    Task,
}

/// One address family's socket, its reader and the echoes awaiting replies.
pub struct Family {
    shared: Arc<Shared>,
    seq: AtomicU16,
    /// The reading task, when there is one (a thread looks at `closed`).
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Family {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Family {
    /// Open the family's socket (raw, else datagram) and start its reader. `Task` must be
    /// called on a tokio runtime.
    pub fn open(v6: bool, receiving: Receiving) -> std::io::Result<Self> {
        let (domain, protocol) = if v6 {
            (Domain::IPV6, Protocol::ICMPV6)
        } else {
            (Domain::IPV4, Protocol::ICMPV4)
        };
        let (socket, raw) = match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(s) => (s, true),
            Err(raw_error) => match Socket::new(domain, Type::DGRAM, Some(protocol)) {
                Ok(s) => (s, false),
                Err(_) => return Err(raw_error),
            },
        };
        // Best effort: capped by net.core.rmem_max.
        let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
        socket.set_write_timeout(Some(SEND_LIMIT))?;
        let socket = match receiving {
            Receiving::Thread => {
                socket.set_read_timeout(Some(RECEIVE_POLL))?;
                Sock::Blocking(UdpSocket::from(socket))
            }
            Receiving::Task => {
                socket.set_nonblocking(true)?;
                Sock::Driven(tokio::net::UdpSocket::from_std(UdpSocket::from(socket))?)
            }
        };
        let shared = Arc::new(Shared {
            socket,
            raw,
            v6,
            token: rand::random(),
            waiters: Waiters::default(),
            closed: AtomicBool::new(false),
        });
        let reader = shared.clone();
        let task = match receiving {
            Receiving::Thread => {
                std::thread::Builder::new()
                    .name(if v6 { "oob-icmp6" } else { "oob-icmp4" }.into())
                    .spawn(move || receive(&reader))?;
                None
            }
            Receiving::Task => Some(tokio::spawn(async move { receive_task(&reader).await })),
        };
        Ok(Self {
            shared,
            seq: AtomicU16::new(rand::random()),
            task,
        })
    }

    /// Send one echo to `target`, to be waited for with [`Sent::reply`] until `timeout`
    /// after the send: several echoes of one probe go out apart and are waited for in
    /// turn, each against its own deadline, without a task or a timer each. `None` when
    /// the send failed.
    pub fn send(&self, target: IpAddr, ident: u16, timeout: Duration) -> Option<Sent<'_>> {
        let s = &self.shared;
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let key = Key {
            addr: target,
            ident: if s.raw { ident } else { 0 },
            seq,
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut w = lock(&s.waiters);
            if w.contains_key(&key) {
                // 65,536 echoes to one address within one timeout: refuse, never mismatch.
                return None;
            }
            w.insert(key, tx);
        }
        let registered = Unregister {
            waiters: &s.waiters,
            key,
        };
        let packet = request(s.v6, ident, seq, &s.token);
        let sent = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        s.socket.send_to(&packet, SocketAddr::new(target, 0)).ok()?;
        Some(Sent {
            rx,
            sent,
            deadline,
            _registered: registered,
        })
    }
}

/// An echo on its way: its reply is awaited with [`Sent::reply`]; dropping it forgets the
/// echo (a late reply is then ignored).
pub struct Sent<'a> {
    rx: oneshot::Receiver<Answer>,
    sent: Instant,
    deadline: tokio::time::Instant,
    _registered: Unregister<'a>,
}

impl Sent<'_> {
    /// The round trip, or `None`: no reply before the deadline, or an ICMP error.
    pub async fn reply(self) -> Option<Duration> {
        match tokio::time::timeout_at(self.deadline, self.rx).await {
            Ok(Ok(Answer::Reply(at))) => Some(at.saturating_duration_since(self.sent)),
            _ => None,
        }
    }
}

/// Removes an echo's waiter when its future ends, however it ends.
struct Unregister<'a> {
    waiters: &'a Waiters,
    key: Key,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        lock(self.waiters).remove(&self.key);
    }
}

/// The receiving thread: read replies as they arrive and hand each to its echo, until the
/// family is dropped.
fn receive(s: &Shared) {
    let Sock::Blocking(socket) = &s.socket else {
        return;
    };
    let mut buf = [0u8; 2048];
    while !s.closed.load(Ordering::Relaxed) {
        // An error is the read timeout (to look at `closed`), or one queued on the socket.
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            deliver(s, buf.get(..n), from.ip(), Instant::now());
        }
    }
}

/// The receiving task: the same as the thread, woken by the runtime's I/O driver, until the
/// family is dropped (which aborts it).
async fn receive_task(s: &Shared) {
    let Sock::Driven(socket) = &s.socket else {
        return;
    };
    let mut buf = [0u8; 2048];
    loop {
        // An error is one queued on the socket: reading it cleared it.
        if let Ok((n, from)) = socket.recv_from(&mut buf).await {
            deliver(s, buf.get(..n), from.ip(), Instant::now());
        }
    }
}

/// Hand a received packet read at `at` to its echo, if it answers one of ours.
fn deliver(s: &Shared, packet: Option<&[u8]>, from: IpAddr, at: Instant) {
    let Some((key, answer)) = packet.and_then(|b| parse(b, from, s.raw, s.v6, &s.token)) else {
        return;
    };
    let answer = match answer {
        Parsed::Reply => Answer::Reply(at),
        Parsed::Error => Answer::Error,
    };
    if let Some(tx) = lock(&s.waiters).remove(&key) {
        let _ = tx.send(answer);
    }
}

/// An echo request: type, code, checksum, identifier, sequence, payload. The kernel fills
/// in the checksum for ICMPv6 and, on datagram sockets, the identifier.
fn request(v6: bool, ident: u16, seq: u16, token: &[u8; PAYLOAD]) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + PAYLOAD);
    p.push(if v6 { 128 } else { 8 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(token);
    if !v6 {
        let sum = checksum(&p).to_be_bytes();
        p[2] = sum[0];
        p[3] = sum[1];
    }
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(u16::try_from(sum).unwrap_or(0xffff))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parsed {
    Reply,
    Error,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// What a received packet is, if it concerns one of our echoes. Raw IPv4 sockets deliver
/// the IP header; IPv6 and datagram sockets do not. Anything short, foreign or malformed
/// is `None`.
fn parse(
    b: &[u8],
    from: IpAddr,
    raw: bool,
    v6: bool,
    token: &[u8; PAYLOAD],
) -> Option<(Key, Parsed)> {
    let icmp = if raw && !v6 {
        let ihl = usize::from(b.first()? & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        b.get(ihl..)?
    } else {
        b
    };
    let (reply, errors): (u8, [u8; 2]) = if v6 { (129, [1, 3]) } else { (0, [3, 11]) };
    let kind = *icmp.first()?;
    let ident = |id: u16| if raw { id } else { 0 };
    if kind == reply {
        if icmp.get(8..8 + PAYLOAD)? != token {
            return None;
        }
        let key = Key {
            addr: from,
            ident: ident(be16(icmp, 4)?),
            seq: be16(icmp, 6)?,
        };
        return Some((key, Parsed::Reply));
    }
    if !errors.contains(&kind) || !raw {
        return None;
    }
    // An error quotes the offending packet's IP header and its first 8 bytes: ours if
    // those are an echo request; the key is the address it went to.
    let quoted = icmp.get(8..)?;
    let (dest, inner): (IpAddr, &[u8]) = if v6 {
        let dst: [u8; 16] = quoted.get(24..40)?.try_into().ok()?;
        (IpAddr::from(dst), quoted.get(40..)?)
    } else {
        let ihl = usize::from(quoted.first()? & 0x0f) * 4;
        if ihl < 20 {
            return None;
        }
        let dst: [u8; 4] = quoted.get(16..20)?.try_into().ok()?;
        (IpAddr::from(dst), quoted.get(ihl..)?)
    };
    if *inner.first()? != if v6 { 128 } else { 8 } {
        return None;
    }
    let key = Key {
        addr: dest,
        ident: ident(be16(inner, 4)?),
        seq: be16(inner, 6)?,
    };
    Some((key, Parsed::Error))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: [u8; PAYLOAD] = *b"oob-test-token-x";

    fn ipv4_header(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h
    }

    #[test]
    fn an_echo_request_carries_a_valid_checksum() {
        let p = request(false, 0x1234, 7, &TOKEN);
        assert_eq!((p[0], p[4], p[5], p[7]), (8, 0x12, 0x34, 7));
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        assert_eq!(request(true, 1, 2, &TOKEN)[0], 128);
    }

    #[test]
    fn a_raw_ipv4_reply_is_matched_by_address_identifier_and_sequence() {
        let mut reply = request(false, 0x1234, 7, &TOKEN);
        reply[0] = 0;
        let mut packet = ipv4_header([10, 0, 0, 5], [10, 0, 0, 1]);
        packet.extend_from_slice(&reply);
        let from: IpAddr = "10.0.0.5".parse().unwrap();
        let (key, what) = parse(&packet, from, true, false, &TOKEN).unwrap();
        assert_eq!(what, Parsed::Reply);
        assert_eq!((key.addr, key.ident, key.seq), (from, 0x1234, 7));
        // Another program's echo (another payload) is not ours.
        assert!(parse(&packet, from, true, false, b"some-other-token").is_none());
        // A datagram socket's reply has no IP header, and the kernel's identifier.
        let (key, _) = parse(&reply, from, false, false, &TOKEN).unwrap();
        assert_eq!((key.ident, key.seq), (0, 7));
    }

    #[test]
    fn an_unreachable_quoting_our_echo_answers_it_as_an_error() {
        let echo = request(false, 9, 300, &TOKEN);
        let mut quoted = ipv4_header([10, 0, 0, 1], [10, 0, 0, 9]);
        quoted.extend_from_slice(&echo[..8]);
        let mut icmp = vec![3, 1, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&quoted);
        let mut packet = ipv4_header([10, 0, 0, 254], [10, 0, 0, 1]);
        packet.extend_from_slice(&icmp);
        let (key, what) =
            parse(&packet, "10.0.0.254".parse().unwrap(), true, false, &TOKEN).unwrap();
        assert_eq!(what, Parsed::Error);
        assert_eq!(key.addr, "10.0.0.9".parse::<IpAddr>().unwrap());
        assert_eq!((key.ident, key.seq), (9, 300));
    }

    #[test]
    fn an_ipv6_reply_and_error_are_read_without_an_ip_header() {
        let from: IpAddr = "fd00::5".parse().unwrap();
        let mut reply = request(true, 4, 5, &TOKEN);
        reply[0] = 129;
        let (key, what) = parse(&reply, from, true, true, &TOKEN).unwrap();
        assert_eq!((what, key.ident, key.seq), (Parsed::Reply, 4, 5));
        let mut error = vec![1, 3, 0, 0, 0, 0, 0, 0];
        let mut header = vec![0x60; 8];
        header.extend_from_slice(&[0; 16]);
        header.extend_from_slice(&"fd00::9".parse::<std::net::Ipv6Addr>().unwrap().octets());
        error.extend_from_slice(&header);
        error.extend_from_slice(&request(true, 4, 6, &TOKEN)[..8]);
        let (key, what) = parse(&error, "fd00::1".parse().unwrap(), true, true, &TOKEN).unwrap();
        assert_eq!((what, key.seq), (Parsed::Error, 6));
        assert_eq!(key.addr, "fd00::9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn short_and_garbage_packets_are_ignored() {
        let from: IpAddr = "10.0.0.5".parse().unwrap();
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            for (raw, v6) in [(true, false), (false, false), (true, true), (false, true)] {
                let _ = parse(&junk, from, raw, v6, &TOKEN);
            }
        }
        assert!(
            parse(&[0x41, 0, 0], from, true, false, &TOKEN).is_none(),
            "IHL below 20"
        );
    }
}
