//! Why the pods of a ModelServer do not serve, read from the kubelet's container statuses: a
//! missing Secret, a crash loop, an image that cannot be pulled. Pure, so each rule is
//! unit-tested on pod fixtures; the reconciler feeds it the pods of its watch's store.
//!
//! Which pods count: every pod of the ModelServer that is not being deleted and has not
//! finished, whatever its ReplicaSet. A failing pod of an old ReplicaSet still costs a serving
//! replica (and the Deployment controller removes it soon when a new one replaces it), and a
//! healthy old pod cannot hide a failing new one, because every pod is looked at and the worst
//! problem wins. Comparing `pod-template-hash` with the newest ReplicaSet would need a
//! ReplicaSet watch for no better answer.

use std::fmt;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod};
use kube::ResourceExt;

use crate::render::names;
use crate::text;

/// Waiting reason of a container the kubelet restarts with a growing back-off.
pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
/// Waiting reason of a container whose environment or mounts name something missing.
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
/// Waiting reasons of a container whose image cannot be pulled.
pub const IMAGE_PULL_FAILURES: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];
/// Terminated reason of a container killed by the kernel's OOM killer.
pub const OOM_KILLED: &str = "OOMKilled";
/// The resource name of memory in a container's limits.
const MEMORY: &str = "memory";
/// Pod phases after which the kubelet restarts nothing.
const FINISHED_PHASES: [&str; 2] = ["Succeeded", "Failed"];

/// At most this many lines of a termination message reach the status.
pub const TERMINATION_MESSAGE_MAX_LINES: usize = 10;
/// At most this many bytes of a termination message reach the status.
pub const TERMINATION_MESSAGE_MAX_BYTES: usize = 1024;
/// At most this many bytes of the first line are kept when the message is cut.
const FIRST_LINE_MAX_BYTES: usize = 256;

/// One container of one pod (the pod is in the ModelServer's namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
}

impl fmt::Display for ContainerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "container {} of pod {}", self.container, self.pod)
    }
}

/// How a crash-looping container last exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastExit {
    /// The kernel killed it for exceeding its memory (`OOMKilled`).
    OutOfMemory {
        /// The container's memory limit from the pod spec, if it has one.
        limit: Option<String>,
    },
    /// It exited with this code.
    Code(i32),
}

/// A problem of one container, as the status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodProblem {
    /// The container cannot start because a Secret, or a key in it, does not exist
    /// (`CreateContainerConfigError`). The kubelet retries by itself once it exists.
    SecretNotFound {
        /// Which container.
        at: ContainerRef,
        /// The Secret's name.
        secret: String,
        /// The missing key, when the Secret exists but lacks it.
        key: Option<String>,
    },
    /// The container cannot start for another configuration reason (a missing ConfigMap, ...).
    ContainerConfig {
        /// Which container.
        at: ContainerRef,
        /// The kubelet's message.
        message: String,
    },
    /// The model container (or proxy mode's sidecar) keeps exiting.
    CrashLoop {
        /// Which container.
        at: ContainerRef,
        /// The container's restart count.
        restarts: i32,
        /// How it last exited.
        last_exit: LastExit,
        /// Its termination message, trimmed by [`trim_termination_message`]; empty when none.
        termination_message: String,
    },
    /// The container's image cannot be pulled.
    ImagePull {
        /// Which container.
        at: ContainerRef,
        /// The image.
        image: String,
        /// The kubelet's reason (`ErrImagePull`, `ImagePullBackOff`, `InvalidImageName`).
        reason: String,
        /// The kubelet's message; empty when none.
        message: String,
    },
}

impl PodProblem {
    /// Lower is worse: a missing Secret or config needs a change by the user and explains a crash
    /// loop or a stuck rollout; a crash loop is definite; an image pull may still succeed.
    fn severity(&self) -> u8 {
        match self {
            Self::SecretNotFound { .. } => 0,
            Self::ContainerConfig { .. } => 1,
            Self::CrashLoop { .. } => 2,
            Self::ImagePull { .. } => 3,
        }
    }

    /// The status message: names the pod and container and says what is wrong.
    pub fn message(&self) -> String {
        match self {
            Self::SecretNotFound {
                at,
                secret,
                key: None,
            } => format!(
                "Secret {secret:?} not found: {at} cannot start until it exists (the kubelet retries by itself)"
            ),
            Self::SecretNotFound {
                at,
                secret,
                key: Some(key),
            } => format!(
                "Secret {secret:?} has no key {key:?}: {at} cannot start until the key is added (the kubelet retries by itself)"
            ),
            Self::ContainerConfig { at, message } => format!("{at} cannot start: {message}"),
            Self::CrashLoop {
                at,
                restarts,
                last_exit,
                termination_message,
            } => {
                let exit = match last_exit {
                    LastExit::OutOfMemory { limit: Some(limit) } => {
                        format!("was killed by its memory limit ({limit})")
                    }
                    LastExit::OutOfMemory { limit: None } => {
                        "was killed for running out of memory (it has no memory limit)".to_owned()
                    }
                    LastExit::Code(code) => format!("exited with code {code}"),
                };
                let mut message =
                    format!("{at} keeps exiting: it {exit}, restarted {restarts} times");
                if !termination_message.is_empty() {
                    message.push_str("; its last words:\n");
                    message.push_str(termination_message);
                }
                message
            }
            Self::ImagePull {
                at,
                image,
                reason,
                message,
            } => {
                let mut text = format!("{at} cannot pull image {image:?} ({reason})");
                if !message.is_empty() {
                    text.push_str(": ");
                    text.push_str(message);
                }
                text
            }
        }
    }
}

/// The worst problem among `pods` (ties: the first pod by name, then the first container), or
/// `None` when no container has one of the problems this module knows.
pub fn diagnose<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Option<PodProblem> {
    let mut pods: Vec<&Pod> = pods.into_iter().filter(|pod| counts(pod)).collect();
    pods.sort_by_cached_key(|pod| pod.name_any());
    pods.into_iter()
        .flat_map(pod_problems)
        .min_by_key(PodProblem::severity)
}

/// A pod being deleted is going away, and a finished one is never restarted: neither is
/// the ModelServer's problem any more.
fn counts(pod: &Pod) -> bool {
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| FINISHED_PHASES.contains(&phase));
    pod.metadata.deletion_timestamp.is_none() && !finished
}

/// Every problem of one pod, init containers first (they run first).
fn pod_problems(pod: &Pod) -> Vec<PodProblem> {
    let name = pod.name_any();
    let (init_specs, specs) = pod
        .spec
        .as_ref()
        .map(|s| {
            (
                s.init_containers.as_deref().unwrap_or_default(),
                &s.containers[..],
            )
        })
        .unwrap_or_default();
    let (init_statuses, statuses) = pod
        .status
        .as_ref()
        .map(|s| {
            (
                s.init_container_statuses.as_deref().unwrap_or_default(),
                s.container_statuses.as_deref().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    // Crash loops are the sidecar's report: the model container in both modes, and the native
    // sidecar (an init container) in proxy mode. The install init container only copies a file.
    let init = init_statuses
        .iter()
        .map(|s| (s, init_specs, s.name == names::SIDECAR_CONTAINER));
    let main = statuses
        .iter()
        .map(|s| (s, specs, s.name == names::MODEL_CONTAINER));
    init.chain(main)
        .filter_map(|(status, specs, serves)| {
            let at = ContainerRef {
                pod: name.clone(),
                container: status.name.clone(),
            };
            let spec = specs.iter().find(|c| c.name == status.name);
            container_problem(at, status, spec, serves)
        })
        .collect()
}

/// The problem of one container, if any. `serves`: the container runs the sidecar, whose crash
/// loop is reported.
fn container_problem(
    at: ContainerRef,
    status: &ContainerStatus,
    spec: Option<&Container>,
    serves: bool,
) -> Option<PodProblem> {
    let waiting = status.state.as_ref().and_then(|s| s.waiting.as_ref());
    let waiting_reason = waiting
        .and_then(|w| w.reason.as_deref())
        .unwrap_or_default();
    let waiting_message = waiting
        .and_then(|w| w.message.as_deref())
        .unwrap_or_default()
        .trim();
    if waiting_reason == CREATE_CONTAINER_CONFIG_ERROR {
        return Some(match missing_secret(waiting_message) {
            Some((secret, key)) => PodProblem::SecretNotFound { at, secret, key },
            None => PodProblem::ContainerConfig {
                at,
                message: waiting_message.to_owned(),
            },
        });
    }
    if IMAGE_PULL_FAILURES.contains(&waiting_reason) {
        let image = Some(status.image.as_str())
            .filter(|i| !i.is_empty())
            .or_else(|| spec.and_then(|c| c.image.as_deref()))
            .unwrap_or_default()
            .to_owned();
        return Some(PodProblem::ImagePull {
            at,
            image,
            reason: waiting_reason.to_owned(),
            message: waiting_message.to_owned(),
        });
    }
    if serves {
        return crash_loop(at, status, spec, waiting_reason);
    }
    None
}

/// A crash loop: the kubelet is backing off restarts, or the container failed before and has
/// not become ready since. A container that restarted once and serves again is not reported:
/// its old `lastState` would otherwise keep the ModelServer unready forever.
fn crash_loop(
    at: ContainerRef,
    status: &ContainerStatus,
    spec: Option<&Container>,
    waiting_reason: &str,
) -> Option<PodProblem> {
    let terminated = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .or_else(|| status.state.as_ref().and_then(|s| s.terminated.as_ref()));
    let failed_before =
        status.restart_count >= 1 && terminated.is_some_and(|t| t.exit_code != 0) && !status.ready;
    if waiting_reason != CRASH_LOOP_BACK_OFF && !failed_before {
        return None;
    }
    let last_exit = match terminated {
        Some(t) if t.reason.as_deref() == Some(OOM_KILLED) => LastExit::OutOfMemory {
            limit: memory_limit(spec),
        },
        Some(t) => LastExit::Code(t.exit_code),
        None => LastExit::Code(0),
    };
    Some(PodProblem::CrashLoop {
        at,
        restarts: status.restart_count,
        last_exit,
        termination_message: terminated
            .and_then(|t| t.message.as_deref())
            .map(trim_termination_message)
            .unwrap_or_default(),
    })
}

fn memory_limit(spec: Option<&Container>) -> Option<String> {
    spec?
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get(MEMORY)
        .map(|q| q.0.clone())
}

/// The Secret (and key) a `CreateContainerConfigError` message says is missing. The kubelet
/// writes `secret "NAME" not found` and `couldn't find key KEY in Secret NAMESPACE/NAME`.
pub fn missing_secret(message: &str) -> Option<(String, Option<String>)> {
    if let Some(rest) = message.strip_prefix("secret \"")
        && let Some((name, tail)) = rest.split_once('"')
        && tail.trim() == "not found"
    {
        return Some((name.to_owned(), None));
    }
    let rest = message.strip_prefix("couldn't find key ")?;
    let (key, secret) = rest.split_once(" in Secret ")?;
    let secret = secret.trim();
    let name = secret.rsplit_once('/').map_or(secret, |(_, name)| name);
    Some((name.to_owned(), Some(key.to_owned())))
}

/// A termination message cut for the status: its first line (the sidecar's summary) and its
/// last lines (the worker's last output), at most [`TERMINATION_MESSAGE_MAX_LINES`] lines and
/// about [`TERMINATION_MESSAGE_MAX_BYTES`] bytes, with `...` where lines were left out.
pub fn trim_termination_message(message: &str) -> String {
    let lines: Vec<&str> = message.trim_end().lines().collect();
    let Some((first, rest)) = lines.split_first() else {
        return String::new();
    };
    let keep = TERMINATION_MESSAGE_MAX_LINES - 1;
    let (cut, tail) = if rest.len() > keep {
        (true, &rest[rest.len() - keep..])
    } else {
        (false, rest)
    };
    let mut tail_text = tail.join("\n");
    let marker = if cut { "\n..." } else { "" };
    let whole = first.len() + marker.len() + 1 + tail_text.len();
    // The first line is cut only when the whole does not fit.
    let first = if whole > TERMINATION_MESSAGE_MAX_BYTES {
        text::head(first, FIRST_LINE_MAX_BYTES)
    } else {
        first
    };
    let mut out = format!("{first}{marker}");
    let budget = TERMINATION_MESSAGE_MAX_BYTES.saturating_sub(out.len() + "\n...\n".len());
    if tail_text.len() > budget {
        tail_text = format!("...{}", text::tail(&tail_text, budget));
    }
    if !tail_text.is_empty() {
        out.push('\n');
        out.push_str(&tail_text);
    }
    out
}

#[cfg(test)]
mod tests;
