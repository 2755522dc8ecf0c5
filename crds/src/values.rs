//! Values of the spec that are parsed when the object is read, so nothing downstream meets an
//! unparsed string: durations (`60s`, `1m30s`) and byte quantities (`100Mi`). Each keeps the
//! text the user wrote, which is what it serializes back to (a server-side apply or a GitOps
//! diff sees exactly the applied value), and the CRD schema stays a plain string that the CEL
//! rules check, so the API server refuses a bad value before the operator ever reads it.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Kubernetes duration, as Go's `time.ParseDuration` and CEL's `duration()` read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct K8sDuration {
    text: String,
    value: Duration,
}

impl K8sDuration {
    /// Parses `text` (`60s`, `1m30s`, `0`).
    pub fn parse(text: &str) -> Result<Self, modelserver_units::UnitsError> {
        Ok(Self {
            value: modelserver_units::parse_duration(text)?,
            text: text.to_owned(),
        })
    }

    /// The duration.
    pub fn value(&self) -> Duration {
        self.value
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A byte quantity such as `100Mi`, `1Gi` or `500M`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteQuantity {
    text: String,
    bytes: u64,
}

impl ByteQuantity {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, modelserver_units::UnitsError> {
        Ok(Self {
            bytes: modelserver_units::parse_quantity_bytes(text)?,
            text: text.to_owned(),
        })
    }

    /// The number of bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

macro_rules! string_value {
    ($type:ty, $name:literal) => {
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.text)
            }
        }

        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.text)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl JsonSchema for $type {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string" })
            }
        }
    };
}

string_value!(K8sDuration, "K8sDuration");
string_value!(ByteQuantity, "ByteQuantity");

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn values_parse_when_read_and_serialize_as_written() {
        let d: K8sDuration = serde_json::from_str("\"1m30s\"").unwrap();
        assert_eq!(d.value(), Duration::from_secs(90));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"1m30s\"");
        let q: ByteQuantity = serde_json::from_str("\"1.5Ki\"").unwrap();
        assert_eq!(q.bytes(), 1536);
        assert_eq!(serde_json::to_string(&q).unwrap(), "\"1.5Ki\"");
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let e = serde_json::from_str::<K8sDuration>("\"soon\"").unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let e = serde_json::from_str::<ByteQuantity>("\"lots\"").unwrap_err();
        assert!(e.to_string().contains("invalid byte quantity"), "{e}");
    }
}
