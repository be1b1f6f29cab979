//! Commands over SSH (russh): key authentication, the host key checked against a known_hosts
//! file or a key pinned in the inventory (unknown or changed key = refusal), a deadline, and
//! the remote command wrapped in `timeout` so it never outlives us. A reboot is counted as
//! sent when the channel drops without an exit status (the host went down under us).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{client, ChannelMsg};

/// How the server's host key is checked. There is no "accept any key".
#[derive(Debug, Clone)]
pub enum HostKeyPolicy {
    /// An OpenSSH known_hosts file (`host`, or `[host]:port` for other ports).
    KnownHosts(PathBuf),
    /// Exactly this key (from the inventory, `ssh-ed25519 AAAA…`).
    Pinned(PublicKey),
}

/// Where and as whom to run commands.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    pub policy: HostKeyPolicy,
    /// For connect and authentication; the command has its own time limit.
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{host}: unknown host key ({key}); add it to the known_hosts file or pin it")]
    UnknownHostKey { host: String, key: String },
    #[error("{host}: HOST KEY CHANGED ({detail}); refusing to connect")]
    ChangedHostKey { host: String, detail: String },
    #[error("{host}: cannot load the SSH key {path}: {detail}")]
    Key {
        host: String,
        path: String,
        detail: String,
    },
    #[error("{host}: the server refused key authentication for {user}")]
    Auth { host: String, user: String },
    #[error("{host}: no answer within {after:?}")]
    Timeout { host: String, after: Duration },
    #[error("{host}: {detail}")]
    Ssh { host: String, detail: String },
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when the channel closed without an exit status (the host went away).
    pub exit_status: Option<u32>,
}

struct Verifier {
    host: String,
    port: u16,
    policy: HostKeyPolicy,
    refusal: Arc<Mutex<Option<SshError>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server else {
            self.refuse(SshError::UnknownHostKey {
                host: self.host.clone(),
                key: "an SSH certificate (not supported)".into(),
            });
            return Ok(false);
        };
        let fingerprint = key.fingerprint(Default::default()).to_string();
        let verdict = match &self.policy {
            HostKeyPolicy::Pinned(pinned) if pinned.key_data() == key.key_data() => Ok(()),
            HostKeyPolicy::Pinned(_) => Err(SshError::ChangedHostKey {
                host: self.host.clone(),
                detail: format!("{fingerprint} is not the pinned key"),
            }),
            HostKeyPolicy::KnownHosts(path) => {
                match russh::keys::check_known_hosts_path(&self.host, self.port, key, path) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(SshError::UnknownHostKey {
                        host: self.host.clone(),
                        key: fingerprint,
                    }),
                    Err(e) => Err(SshError::ChangedHostKey {
                        host: self.host.clone(),
                        detail: format!("{fingerprint}: {e}"),
                    }),
                }
            }
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(e) => {
                self.refuse(e);
                Ok(false)
            }
        }
    }
}

impl Verifier {
    fn refuse(&self, e: SshError) {
        if let Ok(mut slot) = self.refusal.lock() {
            *slot = Some(e);
        }
    }
}

/// `timeout` wrapper: the command is killed on the host when its time is up.
pub fn wrap(command: &str, limit: Duration) -> String {
    let quoted = command.replace('\'', "'\\''");
    format!(
        "timeout --kill-after=5 {} sh -c '{quoted}'",
        limit.as_secs().max(1)
    )
}

/// One authenticated SSH connection to a host: several commands, each on a channel of its
/// own, for the price of one key exchange.
pub struct Session {
    handle: client::Handle<Verifier>,
    host: String,
}

impl Session {
    /// Connect and authenticate, within the target's connect timeout.
    pub async fn open(t: &SshTarget) -> Result<Self, SshError> {
        let ssh = |detail: String| SshError::Ssh {
            host: t.host.clone(),
            detail,
        };
        let key = russh::keys::load_secret_key(&t.key, None).map_err(|e| SshError::Key {
            host: t.host.clone(),
            path: t.key.display().to_string(),
            detail: e.to_string(),
        })?;
        let refusal = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            host: t.host.clone(),
            port: t.port,
            policy: t.policy.clone(),
            refusal: refusal.clone(),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(SESSION_IDLE),
            ..Default::default()
        });
        let connect = async {
            let mut handle = client::connect(config, (t.host.as_str(), t.port), verifier)
                .await
                .map_err(|e| {
                    refusal
                        .lock()
                        .ok()
                        .and_then(|mut r| r.take())
                        .unwrap_or_else(|| ssh(e.to_string()))
                })?;
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(|e| ssh(e.to_string()))?
                .flatten();
            let auth = handle
                .authenticate_publickey(&t.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                .await
                .map_err(|e| ssh(e.to_string()))?;
            if !auth.success() {
                return Err(SshError::Auth {
                    host: t.host.clone(),
                    user: t.user.clone(),
                });
            }
            Ok(handle)
        };
        let handle = tokio::time::timeout(t.connect_timeout, connect)
            .await
            .map_err(|_| SshError::Timeout {
                host: t.host.clone(),
                after: t.connect_timeout,
            })??;
        Ok(Self {
            handle,
            host: t.host.clone(),
        })
    }

    /// Run `command` (wrapped in `timeout limit`) and collect its output.
    pub async fn run(&self, command: &str, limit: Duration) -> Result<Output, SshError> {
        let ssh = |detail: String| SshError::Ssh {
            host: self.host.clone(),
            detail,
        };
        let run = async {
            let mut channel = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| ssh(e.to_string()))?;
            channel
                .exec(true, wrap(command, limit))
                .await
                .map_err(|e| ssh(e.to_string()))?;
            let mut out = Output::default();
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        out.stderr.extend_from_slice(&data);
                    }
                    ChannelMsg::ExitStatus { exit_status } => out.exit_status = Some(exit_status),
                    _ => {}
                }
                if out.stdout.len() > OUTPUT_MAX || out.stderr.len() > OUTPUT_MAX {
                    let _ = channel.close().await;
                    return Err(ssh(format!(
                        "the command's output passed {} MiB; stopped reading",
                        OUTPUT_MAX >> 20
                    )));
                }
            }
            Ok(out)
        };
        let after = limit + Duration::from_secs(10);
        tokio::time::timeout(after, run)
            .await
            .map_err(|_| SshError::Timeout {
                host: self.host.clone(),
                after,
            })?
    }

    /// Say goodbye; best effort and bounded: a host that is rebooting may never answer.
    pub async fn close(self) {
        let bye = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en");
        let _ = tokio::time::timeout(Duration::from_secs(2), bye).await;
    }
}

/// The most output one command may send (each of stdout and stderr); the largest expected
/// (`smartctl -x` of a big drive, a kubelet journal excerpt) is well under 1 MiB.
const OUTPUT_MAX: usize = 16 << 20;

/// A connection with no traffic for this long is dropped (the longest command has its own
/// limit, and its output keeps the connection busy).
const SESSION_IDLE: Duration = Duration::from_secs(300);

/// Run `command` (wrapped in `timeout limit`) on a connection of its own.
pub async fn exec(t: &SshTarget, command: &str, limit: Duration) -> Result<Output, SshError> {
    let session = Session::open(t).await?;
    let result = session.run(command, limit).await;
    session.close().await;
    result
}

/// Ask the host to reboot. Sent when the command exits 0 or the connection drops after the
/// command was asked for without an exit status (systemd stops sshd under us); any other exit
/// status is an error, and so is a connection that never opened (nothing was sent).
pub async fn reboot(t: &SshTarget, command: &str) -> Result<bool, SshError> {
    let session = Session::open(t).await?;
    let result = session.run(command, Duration::from_secs(30)).await;
    session.close().await;
    match result {
        Ok(Output {
            exit_status: None | Some(0),
            ..
        }) => Ok(true),
        Ok(o) => Err(SshError::Ssh {
            host: t.host.clone(),
            detail: format!(
                "reboot command exited {:?}: {}",
                o.exit_status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        }),
        Err(SshError::Ssh { detail, .. })
            if detail.contains("Disconnect") || detail.contains("connection") =>
        {
            Ok(true)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn commands_are_wrapped_and_quoted() {
        assert_eq!(
            super::wrap("echo 'a b'", std::time::Duration::from_secs(30)),
            "timeout --kill-after=5 30 sh -c 'echo '\\''a b'\\'''"
        );
    }
}
