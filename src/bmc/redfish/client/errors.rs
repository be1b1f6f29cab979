//! What a failed request becomes: transport errors worded for an operator (TLS told from
//! refused and timed out), Retry-After and backoff between attempts.

use std::time::Duration;

use rand::Rng as _;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

use crate::bmc::BmcError;
use crate::timeouts;

pub(super) fn s_u16(s: StatusCode) -> u16 {
    s.as_u16()
}

/// `Retry-After` in seconds (the HTTP-date form is not used by BMCs and counts as absent).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Exponential back-off with jitter: base · 2^(attempt-1) · [0.5, 1.5).
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = timeouts::BMC_BACKOFF * 2u32.saturating_pow(attempt.saturating_sub(1));
    base.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// The error and its sources, joined, for messages.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Is there a rustls error anywhere in the chain (also inside `io::Error`s)?
pub(super) fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return true;
            }
        }
        current = err.source();
    }
    false
}

pub(super) fn transport_error(url: &str, e: &reqwest::Error, after: Duration) -> BmcError {
    if e.is_timeout() {
        return BmcError::Timeout {
            url: url.to_owned(),
            after,
        };
    }
    let detail = chain(e);
    // rustls errors travel inside io::Errors; when the type is lost on the way, the
    // message still names the certificate.
    if is_tls(e) || detail.contains("certificate") {
        return BmcError::Tls {
            url: url.to_owned(),
            detail,
        };
    }
    BmcError::Transport {
        url: url.to_owned(),
        detail,
    }
}
