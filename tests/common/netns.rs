//! Test hosts as network namespaces: a "monitor" namespace where `oob` runs, and host
//! namespaces joined to it by veth pairs. Only addresses inside these namespaces are used;
//! everything is deleted on drop.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {} (network namespaces need root; the test script runs as root)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("oobt-{}-{role}-{n}", std::process::id());
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A monitor namespace and one host namespace on a /16 link; `host_ip` is the first host
/// address, more can be added with [`Link::add_host_addresses`].
pub struct Link {
    pub monitor: Netns,
    pub host: Netns,
    pub host_if: String,
    /// 10.X.0.0/16, X unique per link.
    pub prefix: u8,
}

impl Link {
    pub fn new() -> Self {
        let monitor = Netns::new("mon");
        let host = Netns::new("host");
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = 100 + u8::try_from((std::process::id() + n) % 100).unwrap();
        let (a, b) = (
            format!("om{}", n + std::process::id() % 10000 * 100),
            format!("oh{}", n + std::process::id() % 10000 * 100),
        );
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &a, "netns", &monitor.name]);
        ip(&["link", "set", &b, "netns", &host.name]);
        ip(&[
            "-n",
            &monitor.name,
            "addr",
            "add",
            &format!("10.{prefix}.255.254/16"),
            "dev",
            &a,
        ]);
        ip(&[
            "-n",
            &host.name,
            "addr",
            "add",
            &format!("10.{prefix}.0.1/16"),
            "dev",
            &b,
        ]);
        ip(&["-n", &monitor.name, "link", "set", &a, "up"]);
        ip(&["-n", &host.name, "link", "set", &b, "up"]);
        Self {
            monitor,
            host,
            host_if: b,
            prefix,
        }
    }

    pub fn host_ip(&self) -> String {
        format!("10.{}.0.1", self.prefix)
    }

    /// Add `n` more addresses on the host side (10.P.1.0 upwards); returns them.
    pub fn add_host_addresses(&self, n: usize) -> Vec<String> {
        let addrs: Vec<String> = (0..n)
            .map(|i| format!("10.{}.{}.{}", self.prefix, 1 + i / 250, 1 + i % 250))
            .collect();
        let batch: String = addrs
            .iter()
            .map(|a| format!("addr add {a}/16 dev {}\n", self.host_if))
            .collect();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), batch).unwrap();
        ip(&[
            "-n",
            &self.host.name,
            "-batch",
            file.path().to_str().unwrap(),
        ]);
        addrs
    }

    /// Link down on the host side: the host goes dark.
    pub fn host_down(&self) {
        ip(&["-n", &self.host.name, "link", "set", &self.host_if, "down"]);
    }

    pub fn host_up(&self) {
        ip(&["-n", &self.host.name, "link", "set", &self.host_if, "up"]);
    }
}
