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

/// A monitor namespace with several hosts, each on its own veth pair and /24
/// (10.P.i.1 the host, 10.P.i.254 the monitor), so that each host can go dark on its own.
pub struct Lan {
    pub monitor: Netns,
    /// (namespace, interface inside it, address).
    pub hosts: Vec<(Netns, String, String)>,
}

impl Lan {
    pub fn new(hosts: usize) -> Self {
        let monitor = Netns::new("mon");
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = 100 + u8::try_from((std::process::id() + n) % 100).unwrap();
        let mut out = Vec::new();
        for i in 0..hosts {
            let ns = Netns::new("host");
            let tag = NEXT.fetch_add(1, Ordering::SeqCst) + std::process::id() % 10000 * 100;
            let (a, b) = (format!("lm{tag}"), format!("lh{tag}"));
            ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
            ip(&["link", "set", &a, "netns", &monitor.name]);
            ip(&["link", "set", &b, "netns", &ns.name]);
            let net = format!("10.{prefix}.{}", i + 1);
            ip(&[
                "-n",
                &monitor.name,
                "addr",
                "add",
                &format!("{net}.254/24"),
                "dev",
                &a,
            ]);
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{net}.1/24"),
                "dev",
                &b,
            ]);
            ip(&["-n", &monitor.name, "link", "set", &a, "up"]);
            ip(&["-n", &ns.name, "link", "set", &b, "up"]);
            out.push((ns, b, format!("{net}.1")));
        }
        Self {
            monitor,
            hosts: out,
        }
    }

    /// Host `i`'s link down (dark) or up.
    pub fn set_host(&self, i: usize, up: bool) {
        let (ns, dev, _) = &self.hosts[i];
        ip(&[
            "-n",
            &ns.name,
            "link",
            "set",
            dev,
            if up { "up" } else { "down" },
        ]);
    }
}

/// A tokio runtime on a thread inside a network namespace: sockets opened by tasks spawned
/// on [`NsRuntime::handle`] live in that namespace (loopback there is the namespace's own).
pub struct NsRuntime {
    pub handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    pub fn enter(ns: &str) -> Self {
        let path = format!("/var/run/netns/{ns}");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open the namespace");
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns (root)");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            tx.send(rt.handle().clone()).expect("hand over the runtime");
            rt.block_on(async {
                let _ = stopped.await;
            });
        });
        let handle = rx.recv().expect("namespace runtime started");
        Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Run `fut` inside the namespace and wait for it.
    pub async fn run<F>(&self, fut: F) -> F::Output
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(fut).await.expect("task in the namespace")
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
