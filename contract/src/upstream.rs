//! Where proxy mode forwards to.

use std::fmt;

use crate::ContractError;

/// `HOST:PORT` of proxy mode's upstream, with `localhost` meaning 127.0.0.1 (no resolver needed,
/// which matters for the statically linked sidecar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl UpstreamAddr {
    /// The model's own server in the same pod.
    pub fn loopback(port: u16) -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port,
        }
    }

    /// Parses `HOST:PORT` (IPv6 as `[::1]:8000`).
    pub fn parse(input: &str) -> Result<Self, ContractError> {
        let err = || ContractError::Upstream {
            input: input.to_string(),
        };
        let (host, port) = input.trim().rsplit_once(':').ok_or_else(err)?;
        let port: u16 = port.parse().map_err(|_| err())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(err());
        }
        let host = if host.eq_ignore_ascii_case("localhost") {
            "127.0.0.1".to_string()
        } else {
            host.to_string()
        };
        Ok(Self { host, port })
    }

    /// `host:port` as a connect target (IPv6 in brackets).
    pub fn target(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn upstream_addresses() {
        assert_eq!(
            UpstreamAddr::parse("localhost:8000").unwrap().target(),
            "127.0.0.1:8000"
        );
        assert_eq!(
            UpstreamAddr::parse("[::1]:80").unwrap().target(),
            "[::1]:80"
        );
        assert_eq!(UpstreamAddr::loopback(8000).to_string(), "127.0.0.1:8000");
        assert!(UpstreamAddr::parse("8000").is_err());
        assert!(UpstreamAddr::parse("host:").is_err());
        assert!(UpstreamAddr::parse(":80").is_err());
    }
}
