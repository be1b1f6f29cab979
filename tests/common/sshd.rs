//! A real OpenSSH server for tests, with a generated host key and a generated user key in its
//! authorized_keys; in the root namespace on loopback, or inside a test namespace.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Sshd {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The user's private key (ed25519, no passphrase).
    pub user_key: PathBuf,
    /// `ssh-ed25519 AAAA…` of the host key.
    pub host_key_pub: String,
}

fn keygen(path: &std::path::Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen (openssh-client)");
    assert!(out.status.success(), "{out:?}");
}

impl Sshd {
    pub fn start(ns: Option<&str>, port: u16) -> Self {
        Self::start_with_path(ns, port, None)
    }

    /// The same, with `bin` first on the sessions' PATH (stand-in commands).
    pub fn start_with_path(ns: Option<&str>, port: u16, bin: Option<&std::path::Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let host_key = dir.path().join("host_ed25519");
        let user_key = dir.path().join("user_ed25519");
        keygen(&host_key);
        keygen(&user_key);
        let authorized = dir.path().join("authorized_keys");
        std::fs::copy(user_key.with_extension("pub"), &authorized).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let listen = if ns.is_some() { "0.0.0.0" } else { "127.0.0.1" };
        let config = dir.path().join("sshd_config");
        let path = bin.map_or_else(String::new, |b| {
            format!(
                "SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
                b.display()
            )
        });
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress {listen}\nHostKey {}\nPidFile none\nUsePAM no\nStrictModes no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
                 AuthorizedKeysFile {}\n{path}",
                host_key.display(),
                authorized.display()
            ),
        )
        .unwrap();
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "/usr/sbin/sshd"]);
                c
            }
            None => Command::new("/usr/sbin/sshd"),
        };
        let child = cmd
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (openssh-server; the test script installs it)");
        let pubkey = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
        let host_key_pub = pubkey
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        Self {
            child,
            dir,
            port,
            user_key,
            host_key_pub,
        }
    }

    /// A known_hosts file naming this server's key for `host`.
    pub fn known_hosts(&self, host: &str) -> PathBuf {
        let path = self.dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!("[{host}]:{} {}\n", self.port, self.host_key_pub),
        )
        .unwrap();
        path
    }

    /// Wait until the port accepts connections (bounded: 5 s).
    pub fn wait_ready(&self) {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("sshd did not listen on 127.0.0.1:{} within 5 s", self.port);
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
