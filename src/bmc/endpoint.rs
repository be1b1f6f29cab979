//! BMC addresses in the Metal3 style: `ipmi://host[:port]`,
//! `redfish[+http|+https]://host[:port][/redfish/v1/Systems/ID]`, `idrac-redfish://…`,
//! `ilo5-redfish://…`. Parsing only; nothing here connects.

use serde::{Deserialize, Serialize};
use std::fmt;

use super::BmcError;

/// Which wire protocol an endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Redfish,
    Ipmi,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Redfish => "redfish",
            Self::Ipmi => "ipmi",
        })
    }
}

/// A parsed BMC address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub protocol: Protocol,
    /// Host as written (IPv6 in brackets).
    pub host: String,
    pub port: u16,
    /// HTTPS (Redfish only).
    pub tls: bool,
    /// The Redfish system named in the address (`/redfish/v1/Systems/ID`), if any.
    pub system_path: Option<String>,
    /// Profile implied by the scheme (`idrac-redfish` → `dell-idrac`).
    pub profile_hint: Option<&'static str>,
    original: String,
}

const IPMI_PORT: u16 = 623;

impl Endpoint {
    /// Parse an address; the error says what is wrong and what is accepted.
    pub fn parse(address: &str) -> Result<Self, BmcError> {
        let bad = |reason: &str| BmcError::InvalidAddress {
            address: redact_userinfo(address),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(address).map_err(|e| bad(&e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials in the address are not accepted (they would end up in logs); \
                 use --user and --password-env/--password-file",
            ));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .to_owned();
        let (base, transport) = match url.scheme().split_once('+') {
            Some((b, t)) => (b, Some(t)),
            None => (url.scheme(), None),
        };
        let (protocol, profile_hint) =
            match base {
                "ipmi" => (Protocol::Ipmi, None),
                "redfish" => (Protocol::Redfish, None),
                "idrac-redfish" => (Protocol::Redfish, Some("dell-idrac")),
                "ilo5-redfish" => (Protocol::Redfish, Some("hpe-ilo")),
                _ => return Err(bad(
                    "unknown scheme; use ipmi://, redfish://, redfish+http://, redfish+https://, \
                     idrac-redfish:// or ilo5-redfish://",
                )),
            };
        let tls = match (protocol, transport) {
            (Protocol::Ipmi, None) => false,
            (Protocol::Ipmi, Some(_)) => return Err(bad("ipmi:// takes no +transport")),
            (Protocol::Redfish, None | Some("https")) => true,
            (Protocol::Redfish, Some("http")) => false,
            (Protocol::Redfish, Some(_)) => return Err(bad("transport must be +http or +https")),
        };
        let default_port = match (protocol, tls) {
            (Protocol::Ipmi, _) => IPMI_PORT,
            (Protocol::Redfish, true) => 443,
            (Protocol::Redfish, false) => 80,
        };
        let path = url.path().trim_end_matches('/');
        let system_path = match protocol {
            Protocol::Ipmi if !path.is_empty() => return Err(bad("ipmi:// takes no path")),
            Protocol::Ipmi => None,
            Protocol::Redfish if path.is_empty() || path == "/redfish/v1" => None,
            Protocol::Redfish if path.starts_with("/redfish/v1/Systems/") => Some(path.to_owned()),
            Protocol::Redfish => {
                return Err(bad("the path must be /redfish/v1/Systems/ID (or nothing)"))
            }
        };
        Ok(Self {
            protocol,
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            system_path,
            profile_hint,
            original: address.to_owned(),
        })
    }

    /// `https://host:port` (or `http://`) for Redfish.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// `host:port`, for logs and error messages.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// In settings an address is its string; it is parsed (and refused with the reason) when the
/// settings load, once.
impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.original)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// `scheme://user:pw@host` → `scheme://***@host`, so a mistyped address never leaks a password
/// into an error message.
fn redact_userinfo(address: &str) -> String {
    let Some((scheme, rest)) = address.split_once("://") else {
        return address.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => address.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_metal3_style_addresses() {
        let e = Endpoint::parse("redfish://10.0.0.5/redfish/v1/Systems/1").unwrap();
        assert_eq!(e.protocol, Protocol::Redfish);
        assert!(e.tls);
        assert_eq!(e.port, 443);
        assert_eq!(e.system_path.as_deref(), Some("/redfish/v1/Systems/1"));

        let e = Endpoint::parse("redfish+http://127.0.0.1:8000").unwrap();
        assert!(!e.tls);
        assert_eq!(e.base_url(), "http://127.0.0.1:8000");
        assert_eq!(e.system_path, None);

        let e = Endpoint::parse("idrac-redfish://bmc.example/redfish/v1/Systems/System.Embedded.1")
            .unwrap();
        assert_eq!(e.profile_hint, Some("dell-idrac"));

        let e = Endpoint::parse("ipmi://[::1]:9623").unwrap();
        assert_eq!(e.protocol, Protocol::Ipmi);
        assert_eq!(e.host, "[::1]");
        assert_eq!(e.port, 9623);
        assert_eq!(Endpoint::parse("ipmi://h").unwrap().port, 623);
    }

    #[test]
    fn rejects_bad_addresses_with_a_reason() {
        for (addr, needle) in [
            ("ftp://h", "unknown scheme"),
            ("redfish://user:pw@h", "credentials"),
            ("redfish+gopher://h", "+http or +https"),
            (
                "redfish://h/redfish/v1/Managers/1",
                "/redfish/v1/Systems/ID",
            ),
            ("ipmi://h/x", "no path"),
            ("not a url", "relative URL"),
        ] {
            let err = Endpoint::parse(addr).unwrap_err().to_string();
            assert!(err.contains(needle), "{addr}: {err}");
            assert!(!err.contains("pw@"), "{err}");
        }
    }
}
