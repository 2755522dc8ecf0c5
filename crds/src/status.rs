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
    /// observedGeneration is lower than metadata.generation is stale.
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

    /// The in-cluster URL of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Ready: this generation is fully rolled out and its desired replicas are available.
    /// Reconciling: a rollout or scale is in progress. Stalled: a problem that needs a change to
    /// fix (invalid spec, missing Secret, crash loop, progress deadline exceeded).
    /// lastTransitionTime changes only when a condition's status flips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Option<Vec<Condition>>,
}

/// Condition types and reasons: part of the API, kept stable like field names.
pub mod condition {
    /// True when the current generation is rolled out and its desired replicas are available.
    pub const READY: &str = "Ready";
    /// True while a rollout or scale is in progress.
    pub const RECONCILING: &str = "Reconciling";
    /// True on a problem that needs a change to fix.
    pub const STALLED: &str = "Stalled";

    /// Reasons used on the conditions.
    pub mod reason {
        /// Everything is rolled out and available.
        pub const AVAILABLE: &str = "Available";
        /// A new pod template is being rolled out.
        pub const ROLLOUT_IN_PROGRESS: &str = "RolloutInProgress";
        /// Pods are being added or removed, or are not yet ready.
        pub const SCALING: &str = "Scaling";
        /// The Deployment has not yet observed the latest change.
        pub const DEPLOYMENT_PENDING: &str = "DeploymentPending";
        /// The Deployment did not progress within its progress deadline.
        pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
        /// A container cannot start because a Secret it names, or a key in it, does not exist
        /// (the kubelet's `CreateContainerConfigError`).
        pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
        /// A container cannot start because of another part of its configuration (a missing
        /// ConfigMap or key: the kubelet's `CreateContainerConfigError`).
        pub const CONTAINER_CONFIG_ERROR: &str = "ContainerConfigError";
        /// The model container (or proxy mode's sidecar) keeps exiting: its workers exceeded
        /// their restart budget, or it was killed by its memory limit.
        pub const WORKER_CRASH_LOOP: &str = "WorkerCrashLoop";
        /// A container's image cannot be pulled (yet): `ErrImagePull`, `ImagePullBackOff` or
        /// `InvalidImageName`. Stalled with `ProgressDeadlineExceeded` once the deadline passes.
        pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
        /// The spec breaks a validation rule.
        pub const INVALID_SPEC: &str = "InvalidSpec";
        /// Nothing is wrong.
        pub const NO_PROBLEMS: &str = "NoProblems";
        /// Nothing is in progress.
        pub const IDLE: &str = "Idle";
    }
}
