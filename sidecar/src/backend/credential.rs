//! The proxy-mode upstream's own credential (`--upstream-credential`): a header the sidecar adds
//! to every request it sends the upstream, readiness probes included, for a backend behind the
//! sidecar that wants its own token. It replaces a client's header of the same name, is never
//! logged (the value is marked sensitive and `Debug` prints no part of it), and the same header
//! is removed from the upstream's responses so an echoing backend cannot hand it to a client.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::errors::ConfigError;

/// The prefix of the default header's value.
const BEARER: &str = "Bearer ";

/// A header name and its secret value.
#[derive(Clone)]
pub struct UpstreamCredential {
    name: HeaderName,
    value: HeaderValue,
}

impl UpstreamCredential {
    /// The credential from the flags: `Authorization: Bearer <credential>` without a header
    /// name, the raw value under `header` with one; none without a credential.
    pub fn new(
        credential: Option<&str>,
        header: Option<&HeaderName>,
    ) -> Result<Option<Self>, ConfigError> {
        let Some(credential) = credential else {
            return match header {
                Some(_) => Err(ConfigError::UpstreamCredential(
                    "MODELSERVER_UPSTREAM_CREDENTIAL_HEADER is set but MODELSERVER_UPSTREAM_CREDENTIAL is not",
                )),
                None => Ok(None),
            };
        };
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(ConfigError::UpstreamCredential(
                "MODELSERVER_UPSTREAM_CREDENTIAL is empty",
            ));
        }
        let (name, text) = match header {
            Some(name) => (name.clone(), credential.to_owned()),
            None => (header::AUTHORIZATION, format!("{BEARER}{credential}")),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            ConfigError::UpstreamCredential(
                "MODELSERVER_UPSTREAM_CREDENTIAL contains characters that cannot appear in an HTTP header",
            )
        })?;
        value.set_sensitive(true);
        Ok(Some(Self { name, value }))
    }

    /// Puts the credential on a request to the upstream, replacing the client's header of the
    /// same name.
    pub fn add_to(&self, request: &mut HeaderMap) {
        request.insert(self.name.clone(), self.value.clone());
    }

    /// Removes the credential's header from an upstream response.
    pub fn strip_from(&self, response: &mut HeaderMap) {
        if response.contains_key(&self.name) {
            response.remove(&self.name);
        }
    }
}

impl fmt::Debug for UpstreamCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamCredential")
            .field("header", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bearer_by_default_raw_under_a_named_header() {
        let bearer = UpstreamCredential::new(Some("s3cret"), None)
            .unwrap()
            .unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer client"),
        );
        bearer.add_to(&mut h);
        assert_eq!(h[header::AUTHORIZATION], "Bearer s3cret");
        assert!(h[header::AUTHORIZATION].is_sensitive());

        let key = HeaderName::from_static("x-api-key");
        let raw = UpstreamCredential::new(Some("s3cret"), Some(&key))
            .unwrap()
            .unwrap();
        let mut h = HeaderMap::new();
        raw.add_to(&mut h);
        assert_eq!(h["x-api-key"], "s3cret");
        raw.strip_from(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn the_value_never_shows_in_debug_output() {
        let c = UpstreamCredential::new(Some("s3cret"), None)
            .unwrap()
            .unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("s3cret"), "{text}");
        let mut h = HeaderMap::new();
        c.add_to(&mut h);
        assert!(!format!("{h:?}").contains("s3cret"));
    }

    #[test]
    fn unusable_settings_are_refused() {
        let key = HeaderName::from_static("x-api-key");
        assert!(UpstreamCredential::new(None, None).unwrap().is_none());
        for (credential, header) in [(None, Some(&key)), (Some(" "), None), (Some("a\nb"), None)] {
            assert!(UpstreamCredential::new(credential, header).is_err());
        }
    }
}
