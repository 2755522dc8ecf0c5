//! `ModelServer.status`: what the operator observed, written only through the status subresource.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a ModelServer, in the kstatus convention (Ready, Reconciling, Stalled
/// conditions plus observedGeneration), so `kubectl wait`, Flux, Helm and Argo CD read it as is.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelServerStatus {
    /// The ModelServer's own metadata.generation that this status describes. A status whose
    /// observedGeneration is lower than metadata.generation is stale. 0 (a default of the CRD)
    /// until the operator has reported on the object, so kstatus reads it as in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Pods of the model server, old and new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Pods that run the current pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,

    /// Pods whose model is loaded and that pass readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Pods that have been ready for the Deployment's minReadySeconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,

    /// The label selector of the pods, for the scale subresource (and so for autoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Where clients reach the model: the route's URL (from its host name and the Gateway's
    /// listener) with spec.route set, otherwise the in-cluster URL of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The image the stable version's pods run (its Deployment's model container). With a
    /// canary, status.canary.image is the other version's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// The in-cluster URL of the Service, when status.url is the route's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_url: Option<String>,

    /// The canary, while spec.canary is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,

    /// Ready: this generation is fully rolled out and its desired replicas are available.
    /// Reconciling: a rollout or scale is in progress. Stalled: a problem that needs a change to
    /// fix (invalid spec, missing Secret, crash loop, progress deadline exceeded).
    /// lastTransitionTime changes only when a condition's status flips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Option<Vec<Condition>>,
}

/// What the canary's Deployment reports, and the share of the requests it gets.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The canary's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// The canary's pods, old and new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// The canary's pods that pass readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// spec.canary.weight, as configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,

    /// The percentage of requests the canary gets now: the route's weight once the canary has
    /// a ready pod (0 before), or, behind the shared Service, its share of the ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_percent: Option<i32>,
}

/// Declares a closed set of API strings as an enum: each variant serialises, displays and
/// parses as the string given, so the names stay stable like field names.
macro_rules! api_strings {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The string the API uses.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| UnknownValue {
                        what: stringify!($name),
                        text: text.to_owned(),
                    })
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                self == other.as_str()
            }
        }
    };
}

/// A string that is not one of the values of a condition field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a {what}")]
pub struct UnknownValue {
    /// The Rust type that was asked for.
    pub what: &'static str,
    /// The string that was given.
    pub text: String,
}

api_strings! {
    /// The type of a ModelServer condition (kstatus).
    ConditionType {
        /// True when the current generation is rolled out and its desired replicas are available.
        Ready = "Ready",
        /// True while a rollout or scale is in progress.
        Reconciling = "Reconciling",
        /// True on a problem that needs a change to fix.
        Stalled = "Stalled",
        /// With spec.route: True when every Gateway the route names accepted it and resolved
        /// its backends.
        RouteAccepted = "RouteAccepted",
        /// With spec.canary: True when the canary's pods run its current spec and are available.
        CanaryReady = "CanaryReady",
    }
}

api_strings! {
    /// The status of a condition. The operator writes only True and False; Unknown is the
    /// third value metav1.Condition allows.
    ConditionStatus {
        /// The condition holds.
        True = "True",
        /// The condition does not hold.
        False = "False",
        /// Nobody can tell.
        Unknown = "Unknown",
    }
}

impl From<bool> for ConditionStatus {
    fn from(holds: bool) -> Self {
        if holds { Self::True } else { Self::False }
    }
}

api_strings! {
    /// Why a condition has its status, in CamelCase: part of the API, kept stable.
    Reason {
        /// Everything is rolled out and available.
        Available = "Available",
        /// A new pod template is being rolled out.
        RolloutInProgress = "RolloutInProgress",
        /// Pods are being added or removed, or are not yet ready.
        Scaling = "Scaling",
        /// The Deployment has not yet observed the latest change.
        DeploymentPending = "DeploymentPending",
        /// The Deployment did not progress within its progress deadline.
        ProgressDeadlineExceeded = "ProgressDeadlineExceeded",
        /// A container cannot start because a Secret it names, or a key in it, does not exist
        /// (the kubelet's `CreateContainerConfigError`).
        SecretNotFound = "SecretNotFound",
        /// A container cannot start because of another part of its configuration (a missing
        /// ConfigMap or key: the kubelet's `CreateContainerConfigError`).
        ContainerConfigError = "ContainerConfigError",
        /// The model container (or proxy mode's sidecar) keeps exiting: its workers exceeded
        /// their restart budget, or it was killed by its memory limit.
        WorkerCrashLoop = "WorkerCrashLoop",
        /// A container's image cannot be pulled (yet): `ErrImagePull`, `ImagePullBackOff` or
        /// `InvalidImageName`. Stalled with `ProgressDeadlineExceeded` once the deadline passes.
        ImagePullBackOff = "ImagePullBackOff",
        /// The spec breaks a validation rule.
        InvalidSpec = "InvalidSpec",
        /// Nothing is wrong.
        NoProblems = "NoProblems",
        /// Nothing is in progress.
        Idle = "Idle",
        /// Every Gateway the route names accepted it.
        Accepted = "Accepted",
        /// No Gateway controller has reported on the route yet.
        RoutePending = "RoutePending",
        /// A Gateway refused the route (`Accepted=False`: not allowed from this namespace, no
        /// matching listener or host name, ...).
        RouteNotAccepted = "RouteNotAccepted",
        /// A Gateway accepted the route but cannot resolve a backend (`ResolvedRefs=False`).
        RefsNotResolved = "RefsNotResolved",
        /// The cluster has no Gateway API (its CRDs are not installed), so spec.route cannot
        /// be served.
        GatewayApiMissing = "GatewayAPIMissing",
        /// The cluster has no KEDA (its CRDs are not installed), so concurrency autoscaling
        /// cannot work.
        KedaMissing = "KEDAMissing",
        /// The canary is being rolled out while the stable version serves.
        CanaryRollout = "CanaryRollout",
        /// A child's name is taken by an object the ModelServer does not own.
        NameConflict = "NameConflict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_values_serialise_display_and_parse_as_the_api_strings() {
        for (value, text) in [
            (ConditionType::Ready, "Ready"),
            (ConditionType::Reconciling, "Reconciling"),
            (ConditionType::Stalled, "Stalled"),
        ] {
            assert_eq!(serde_json::to_value(value).ok(), Some(text.into()));
            assert_eq!(value.to_string(), text);
            assert_eq!(text.parse::<ConditionType>(), Ok(value));
        }
        assert_eq!(ConditionStatus::from(true).as_str(), "True");
        assert_eq!(ConditionStatus::from(false).as_str(), "False");
        assert_eq!(
            serde_json::from_value::<ConditionStatus>("Unknown".into()).ok(),
            Some(ConditionStatus::Unknown)
        );
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(*reason));
            assert_eq!(
                serde_json::to_value(reason).ok(),
                Some(reason.as_str().into())
            );
        }
        assert_eq!(
            Reason::ProgressDeadlineExceeded.as_str(),
            "ProgressDeadlineExceeded"
        );
        assert_eq!(
            "ready".parse::<ConditionType>(),
            Err(UnknownValue {
                what: "ConditionType",
                text: "ready".into()
            })
        );
        assert!(String::from("Stalled") == ConditionType::Stalled);
    }
}
