//! SSH liveness: a TCP connect and the server's identification line (`SSH-2.0-…`, RFC 4253
//! §4.2) within a deadline. Command execution over SSH is separate work.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// What the SSH port answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshBanner {
    pub reachable: bool,
    /// The identification line, when one was read.
    pub banner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Connect and read the identification line; servers may send other lines first (§4.2), so
/// up to 8 KiB are read looking for one that starts with `SSH-`.
pub async fn banner(addr: SocketAddr, deadline: Duration) -> SshBanner {
    let fail = |e: String| SshBanner {
        reachable: false,
        banner: None,
        error: Some(e),
    };
    let work = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        while buf.len() < 8192 {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed before an SSH identification line".to_owned());
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf);
            if let Some(line) = text
                .split("\r\n")
                .chain(text.split('\n'))
                .find(|l| l.starts_with("SSH-"))
            {
                if text.contains('\n') {
                    return Ok(line.trim_end().to_owned());
                }
            }
        }
        Err("no SSH identification line in the first 8 KiB".to_owned())
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(Ok(line)) if line.starts_with("SSH-2.0-") || line.starts_with("SSH-1.99-") => {
            SshBanner {
                reachable: true,
                banner: Some(line),
                error: None,
            }
        }
        Ok(Ok(line)) => SshBanner {
            reachable: false,
            banner: Some(line),
            error: Some("not an SSH 2 server".into()),
        },
        Ok(Err(e)) => fail(e),
        Err(_) => fail(format!("no banner within {}s", deadline.as_secs_f32())),
    }
}
