//! `BmcError`: every way talking to a BMC can fail, with context and classifiers.

use std::time::Duration;

/// Errors from the BMC layer. Every variant names where it happened; none carries a secret
/// (body excerpts are scrubbed of credentials before they get here).
#[derive(Debug, thiserror::Error)]
pub enum BmcError {
    #[error("invalid BMC address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },

    #[error("cannot build the HTTP client for {bmc}: {reason}")]
    Client { bmc: String, reason: String },

    #[error("cannot reach {url}: {detail}")]
    Transport { url: String, detail: String },

    #[error("TLS failure talking to {url}: {detail}")]
    Tls { url: String, detail: String },

    #[error("{url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },

    #[error("authentication refused by {url} ({detail}); check the user and password")]
    Auth { url: String, detail: String },

    #[error("{url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },

    #[error("{url} is unavailable (HTTP 503) after {attempts} attempts")]
    Unavailable { url: String, attempts: u32 },

    #[error("{url} returned a malformed response: {detail}")]
    Malformed { url: String, detail: String },

    #[error("{url}: response body larger than {limit} bytes")]
    BodyTooLarge { url: String, limit: usize },

    #[error("{bmc} has several systems ({systems}); name one in the address, e.g. {example}")]
    AmbiguousSystem {
        bmc: String,
        systems: String,
        example: String,
    },

    #[error("not supported by {bmc}: {what}")]
    Unsupported { bmc: String, what: String },

    #[error(
        "the BMC refused {request} (conflict) and the system is {state}, not the target state"
    )]
    Conflict { request: String, state: String },

    #[error("{url}: {command} failed with completion code {code:#04x} ({})", completion_meaning(*.code))]
    Completion {
        url: String,
        command: String,
        code: u8,
    },

    #[error("{url} refused the session: {detail}")]
    Refused { url: String, detail: String },

    #[error("cannot read {path}: {detail}")]
    Local { path: String, detail: String },
}

/// IPMI completion codes (§5.2, table 5-2).
fn completion_meaning(code: u8) -> &'static str {
    match code {
        0xC0 => "node busy",
        0xC1 => "invalid command",
        0xC3 => "timeout while processing",
        0xC5 => "reservation cancelled or invalid",
        0xC7 | 0xC8 => "request data length invalid",
        0xC9 => "parameter out of range",
        0xCB => "requested data not present",
        0xCC => "invalid data field in request",
        0xCE => "cannot respond",
        0xD4 => "insufficient privilege level",
        0xD5 => "not supported in present state",
        0xFF => "unspecified error",
        _ => "command-specific error",
    }
}

impl BmcError {
    /// Worth trying again (same request, later): network trouble, timeouts, 5xx except 501.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Transport { .. } | Self::Timeout { .. } | Self::Unavailable { .. } => true,
            Self::Http { status, .. } => *status >= 500 && *status != 501,
            Self::Completion { code, .. } => matches!(code, 0xC0 | 0xC3 | 0xCE),
            _ => false,
        }
    }

    /// Credentials were refused.
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Auth { .. })
    }

    /// The BMC cannot do this at all (no such action, no log service, HTTP 501/405).
    pub fn is_unsupported(&self) -> bool {
        match self {
            Self::Unsupported { .. } => true,
            Self::Http { status, .. } => *status == 501 || *status == 405,
            Self::Completion { code, .. } => *code == 0xC1,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifiers_follow_status_codes() {
        let http = |status| BmcError::Http {
            url: "u".into(),
            status,
            body: String::new(),
        };
        assert!(http(500).is_retriable());
        assert!(!http(501).is_retriable());
        assert!(http(501).is_unsupported());
        assert!(!http(404).is_retriable());
        assert!(BmcError::Auth {
            url: "u".into(),
            detail: "HTTP 401".into()
        }
        .is_auth());
    }
}
