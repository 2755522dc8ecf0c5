//! What the status of a ModelServer says, computed from what was observed. Pure, so every rule
//! (kstatus conditions, "never Ready for an old generation", lastTransitionTime only on a flip)
//! is unit-tested without a cluster.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use modelserver_crds::ModelServerStatus;
use modelserver_crds::status::{ConditionStatus, ConditionType, Reason};

use crate::controller::pods::PodProblem;
use crate::controller::traffic_status::{self, CanaryObservation, RouteObservation};
use crate::render::names;

/// What the reconciler found, as input to the status.
#[derive(Debug, Clone)]
pub enum Observation<'a> {
    /// The spec breaks a rule; the children were left as they were.
    InvalidSpec {
        /// What is wrong.
        message: String,
    },
    /// The children were applied.
    Applied {
        /// The Deployment as the API server returned it.
        deployment: &'a Deployment,
        /// The worst problem of the ModelServer's pods ([`diagnose`](crate::controller::pods::diagnose)), if any.
        pod_problem: Option<&'a PodProblem>,
        /// The canary, with spec.canary.
        canary: Option<CanaryObservation<'a>>,
        /// The route, with spec.route.
        route: Option<RouteObservation<'a>>,
        /// The spec asks for concurrency autoscaling on a cluster without KEDA.
        keda_missing: bool,
    },
}

/// The Stalled message of concurrency autoscaling without KEDA.
pub const KEDA_MISSING: &str = "spec.autoscaling.metric is concurrency, which needs KEDA (keda.sh/v1alpha1 ScaledObjects): install KEDA, or scale on cpu; the replica count stays as it is until then";

/// The Deployment condition type that carries the progress deadline verdict.
const PROGRESSING: &str = "Progressing";

/// One condition as computed, before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionState {
    /// Ready, Reconciling or Stalled.
    pub type_: ConditionType,
    /// True or False.
    pub status: ConditionStatus,
    /// Why, in CamelCase.
    pub reason: Reason,
    /// For a person.
    pub message: String,
}

/// Everything the status is computed from, by name (two of them are strings, easily swapped
/// when passed by position).
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The ModelServer's own `metadata.generation`.
    pub generation: Option<i64>,
    /// The status as last written, if any.
    pub previous: Option<&'a ModelServerStatus>,
    /// What the reconciler found.
    pub observation: &'a Observation<'a>,
    /// The pods' label selector, for the scale subresource.
    pub selector: String,
    /// Where clients reach the model (the route's URL, or the Service's).
    pub url: String,
    /// The Service's in-cluster URL when `url` is the route's.
    pub cluster_url: Option<String>,
    /// The time a condition that flips is stamped with.
    pub now: &'a Time,
}

/// The desired status, computed from the ModelServer's generation, the previous status and
/// the observation. Replica counts are taken from the Deployment only once the Deployment has
/// observed its own latest generation; before that the previous counts stay.
///
/// When several things are wrong, the first of these is reported: InvalidSpec, then a pod
/// problem (SecretNotFound, ContainerConfigError, WorkerCrashLoop, ImagePullBackOff: the order
/// of [`diagnose`](crate::controller::pods::diagnose), a cause before its symptoms), then the
/// Deployment's own state (ProgressDeadlineExceeded, DeploymentPending, RolloutInProgress,
/// Scaling). An image that
/// cannot be pulled is Reconciling until the Deployment's progress deadline passes, then
/// Stalled with reason ProgressDeadlineExceeded and a message naming the image. Stalled and
/// Reconciling are never both True.
pub fn compute(inputs: Inputs<'_>) -> ModelServerStatus {
    let Inputs {
        generation,
        previous,
        observation,
        selector,
        url,
        cluster_url,
        now,
    } = inputs;
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.selector = Some(selector);
    status.url = Some(url);
    status.cluster_url = cluster_url;
    status.canary = None;

    let states = match observation {
        Observation::InvalidSpec { message } => stalled(Reason::InvalidSpec, message),
        Observation::Applied {
            deployment,
            pod_problem,
            canary,
            route,
            keda_missing,
        } => {
            status.image = model_image(deployment);
            let caught_up = deployment_caught_up(deployment);
            if caught_up {
                let observed = deployment.status.clone().unwrap_or_default();
                status.replicas = Some(observed.replicas.unwrap_or(0));
                status.updated_replicas = Some(observed.updated_replicas.unwrap_or(0));
                status.ready_replicas = Some(observed.ready_replicas.unwrap_or(0));
                status.available_replicas = Some(observed.available_replicas.unwrap_or(0));
            }
            let mut states = match pod_problem {
                Some(problem) => problem_states(deployment, caught_up, problem),
                None => rollout_states(deployment, caught_up),
            };
            if let Some(canary) = canary {
                status.canary = Some(traffic_status::canary_status(canary));
                traffic_status::with_canary(&mut states, canary);
            }
            if let Some(route) = route {
                traffic_status::with_route(&mut states, route);
            }
            if *keda_missing {
                traffic_status::escalate(
                    &mut states,
                    ConditionType::Stalled,
                    Reason::KedaMissing,
                    KEDA_MISSING.to_owned(),
                );
            }
            states
        }
    };
    let previous_conditions = previous
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    status.conditions = Some(
        states
            .into_iter()
            .map(|state| to_condition(state, generation, &previous_conditions, now))
            .collect(),
    );
    status
}

/// The image of a Deployment's model container.
pub fn model_image(deployment: &Deployment) -> Option<String> {
    deployment
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == names::MODEL_CONTAINER)
        .and_then(|c| c.image.clone())
}

/// True when the Deployment controller has seen the Deployment's latest spec.
pub fn deployment_caught_up(deployment: &Deployment) -> bool {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed = deployment
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    observed >= generation && generation > 0
}

pub(crate) fn stalled(why: Reason, message: &str) -> Vec<ConditionState> {
    vec![
        ConditionState {
            type_: ConditionType::Ready,
            status: ConditionStatus::False,
            reason: why,
            message: message.to_owned(),
        },
        ConditionState {
            type_: ConditionType::Reconciling,
            status: ConditionStatus::False,
            reason: why,
            message: "waiting for a change to the spec or the cluster".to_owned(),
        },
        ConditionState {
            type_: ConditionType::Stalled,
            status: ConditionStatus::True,
            reason: why,
            message: message.to_owned(),
        },
    ]
}

/// The Deployment's `Progressing=False` condition with reason ProgressDeadlineExceeded, once
/// its controller has seen the latest spec (an older verdict is about an older template).
fn progress_deadline_exceeded(
    deployment: &Deployment,
    caught_up: bool,
) -> Option<&DeploymentCondition> {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == PROGRESSING && c.status == "False")
        .filter(|c| c.reason.as_deref() == Some(Reason::ProgressDeadlineExceeded.as_str()))
        .filter(|_| caught_up)
}

/// The prefix of every ProgressDeadlineExceeded message.
const NO_PROGRESS: &str = "the rollout made no progress within the deadline";

/// The conditions for a problem seen in the pods.
pub(crate) fn problem_states(
    deployment: &Deployment,
    caught_up: bool,
    problem: &PodProblem,
) -> Vec<ConditionState> {
    let message = problem.message();
    match problem {
        PodProblem::SecretNotFound { .. } => stalled(Reason::SecretNotFound, &message),
        PodProblem::ContainerConfig { .. } => stalled(Reason::ContainerConfigError, &message),
        PodProblem::CrashLoop { .. } => stalled(Reason::WorkerCrashLoop, &message),
        // The kubelet keeps retrying the pull (a registry outage may pass): Reconciling until the
        // Deployment gives up on its progress deadline.
        PodProblem::ImagePull { .. } => match progress_deadline_exceeded(deployment, caught_up) {
            Some(_) => stalled(
                Reason::ProgressDeadlineExceeded,
                &format!("{NO_PROGRESS}: {message}"),
            ),
            None => in_progress(Reason::ImagePullBackOff, message),
        },
    }
}

/// Ready=False and Reconciling=True for `why`; Stalled=False.
fn in_progress(why: Reason, message: String) -> Vec<ConditionState> {
    vec![
        ConditionState {
            type_: ConditionType::Ready,
            status: ConditionStatus::False,
            reason: why,
            message: message.clone(),
        },
        ConditionState {
            type_: ConditionType::Reconciling,
            status: ConditionStatus::True,
            reason: why,
            message,
        },
        ConditionState {
            type_: ConditionType::Stalled,
            status: ConditionStatus::False,
            reason: Reason::NoProblems,
            message: "no problems".to_owned(),
        },
    ]
}

pub(crate) fn rollout_states(deployment: &Deployment, caught_up: bool) -> Vec<ConditionState> {
    if let Some(stuck) = progress_deadline_exceeded(deployment, caught_up) {
        let message = format!(
            "{NO_PROGRESS}: {}",
            stuck
                .message
                .as_deref()
                .unwrap_or("see the Deployment's events")
        );
        return stalled(Reason::ProgressDeadlineExceeded, &message);
    }

    if !caught_up {
        return in_progress(
            Reason::DeploymentPending,
            "the Deployment has not yet observed the latest spec".to_owned(),
        );
    }
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let observed = deployment.status.clone().unwrap_or_default();
    let replicas = observed.replicas.unwrap_or(0);
    let updated = observed.updated_replicas.unwrap_or(0);
    let available = observed.available_replicas.unwrap_or(0);
    if updated < desired || replicas > updated {
        return in_progress(
            Reason::RolloutInProgress,
            format!("{updated} of {desired} pods run the current spec, {replicas} pods in total"),
        );
    }
    if available < desired || replicas != desired {
        return in_progress(
            Reason::Scaling,
            format!("{available} of {desired} pods available, {replicas} pods in total"),
        );
    }
    vec![
        ConditionState {
            type_: ConditionType::Ready,
            status: ConditionStatus::True,
            reason: Reason::Available,
            message: format!("{available} of {desired} pods available and up to date"),
        },
        ConditionState {
            type_: ConditionType::Reconciling,
            status: ConditionStatus::False,
            reason: Reason::Idle,
            message: "the current spec is rolled out".to_owned(),
        },
        ConditionState {
            type_: ConditionType::Stalled,
            status: ConditionStatus::False,
            reason: Reason::NoProblems,
            message: "no problems".to_owned(),
        },
    ]
}

/// A condition, keeping the previous lastTransitionTime unless the status flipped.
fn to_condition(
    state: ConditionState,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == state.type_ && c.status == state.status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: state.type_.to_string(),
        status: state.status.to_string(),
        reason: state.reason.to_string(),
        message: state.message,
        observed_generation: generation,
        last_transition_time,
    }
}

/// True when two statuses say the same thing, ignoring condition timestamps.
pub fn same(a: Option<&ModelServerStatus>, b: &ModelServerStatus) -> bool {
    let Some(a) = a else {
        return false;
    };
    let strip = |s: &ModelServerStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = Time(jiff::Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

/// The conditions whose status differs between two statuses (for events on transitions).
pub fn flipped<'a>(
    before: Option<&ModelServerStatus>,
    after: &'a ModelServerStatus,
) -> Vec<&'a Condition> {
    let old: &[Condition] = before
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    after
        .conditions
        .iter()
        .flatten()
        .filter(|c| {
            !old.iter()
                .any(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::pods::{ContainerRef, LastExit};
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(generation: i64, observed: i64, desired: i32, counts: [i32; 4]) -> Deployment {
        let [replicas, updated, ready, available] = counts;
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(desired),
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(replicas),
                updated_replicas: Some(updated),
                ready_replicas: Some(ready),
                available_replicas: Some(available),
                ..DeploymentStatus::default()
            }),
        }
    }

    fn time(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).expect("time"))
    }

    fn get<'a>(status: &'a ModelServerStatus, type_: &str) -> &'a Condition {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_)
            .expect("condition")
    }

    fn applied(
        d: &Deployment,
        previous: Option<&ModelServerStatus>,
        now: i64,
    ) -> ModelServerStatus {
        compute(Inputs {
            generation: Some(3),
            previous,
            observation: &Observation::Applied {
                deployment: d,
                pod_problem: None,
                canary: None,
                route: None,
                keda_missing: false,
            },
            selector: "sel".into(),
            url: "url".into(),
            cluster_url: None,
            now: &time(now),
        })
    }

    #[test]
    fn a_rolled_out_deployment_is_ready() {
        let status = applied(&deployment(5, 5, 2, [2, 2, 2, 2]), None, 100);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(get(&status, "Ready").status, "True");
        assert_eq!(get(&status, "Reconciling").status, "False");
        assert_eq!(get(&status, "Stalled").status, "False");
        assert_eq!(status.available_replicas, Some(2));
        assert_eq!(get(&status, "Ready").observed_generation, Some(3));
    }

    #[test]
    fn a_deployment_that_has_not_seen_its_spec_is_never_ready_and_keeps_old_counts() {
        let ready = applied(&deployment(5, 5, 2, [2, 2, 2, 2]), None, 100);
        // The spec changed: the Deployment's generation moved on, its controller has not caught up.
        let pending = applied(&deployment(6, 5, 2, [2, 2, 2, 2]), Some(&ready), 200);
        assert_eq!(get(&pending, "Ready").status, "False");
        assert_eq!(get(&pending, "Reconciling").status, "True");
        assert_eq!(get(&pending, "Reconciling").reason, "DeploymentPending");
        assert_eq!(pending.available_replicas, Some(2));
    }

    #[test]
    fn a_rollout_in_progress_is_reconciling() {
        // Surge pod of the new template, old pods still there.
        let status = applied(&deployment(6, 6, 2, [3, 1, 3, 3]), None, 100);
        assert_eq!(get(&status, "Ready").status, "False");
        assert_eq!(get(&status, "Reconciling").status, "True");
        assert_eq!(get(&status, "Reconciling").reason, "RolloutInProgress");
        // All updated, one old pod still terminating.
        let status = applied(&deployment(6, 6, 2, [3, 2, 2, 2]), None, 100);
        assert_eq!(get(&status, "Reconciling").reason, "RolloutInProgress");
        // Scaling up: not all available.
        let status = applied(&deployment(6, 6, 3, [3, 3, 2, 2]), None, 100);
        assert_eq!(get(&status, "Reconciling").reason, "Scaling");
        assert_eq!(get(&status, "Ready").status, "False");
    }

    #[test]
    fn a_progress_deadline_is_stalled_not_reconciling() {
        let mut d = deployment(2, 2, 1, [1, 1, 0, 0]);
        if let Some(s) = d.status.as_mut() {
            s.conditions = Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("ReplicaSet \"x\" has timed out progressing.".into()),
                ..DeploymentCondition::default()
            }]);
        }
        let status = applied(&d, None, 100);
        assert_eq!(get(&status, "Stalled").status, "True");
        assert_eq!(get(&status, "Stalled").reason, "ProgressDeadlineExceeded");
        assert!(get(&status, "Stalled").message.contains("timed out"));
        assert_eq!(get(&status, "Reconciling").status, "False");
        assert_eq!(get(&status, "Ready").status, "False");
    }

    #[test]
    fn an_invalid_spec_is_stalled() {
        let status = compute(Inputs {
            generation: Some(1),
            previous: None,
            observation: &Observation::InvalidSpec {
                message: "bad".into(),
            },
            selector: "s".into(),
            url: "u".into(),
            cluster_url: None,
            now: &time(1),
        });
        assert_eq!(status.selector.as_deref(), Some("s"));
        assert_eq!(status.url.as_deref(), Some("u"));
        assert_eq!(get(&status, "Stalled").status, "True");
        assert_eq!(get(&status, "Stalled").reason, "InvalidSpec");
        assert_eq!(get(&status, "Stalled").message, "bad");
        assert_eq!(get(&status, "Ready").status, "False");
        assert_eq!(get(&status, "Reconciling").status, "False");
    }

    fn at() -> ContainerRef {
        ContainerRef {
            pod: "iris-7d9f-abcde".into(),
            container: "model".into(),
        }
    }

    fn secret_not_found() -> PodProblem {
        PodProblem::SecretNotFound {
            at: at(),
            secret: "iris-token".into(),
            key: None,
        }
    }

    fn crash_loop() -> PodProblem {
        PodProblem::CrashLoop {
            at: at(),
            restarts: 6,
            last_exit: LastExit::Code(1),
            termination_message: "WorkerCrashLoop: worker 0 exited 6 times in 10m".into(),
        }
    }

    fn image_pull() -> PodProblem {
        PodProblem::ImagePull {
            at: at(),
            image: "registry.example.com/acme/iris:9.9".into(),
            reason: "ImagePullBackOff".into(),
            message: "Back-off pulling image".into(),
        }
    }

    fn with_problem(
        d: &Deployment,
        problem: &PodProblem,
        previous: Option<&ModelServerStatus>,
    ) -> ModelServerStatus {
        compute(Inputs {
            generation: Some(3),
            previous,
            observation: &Observation::Applied {
                deployment: d,
                pod_problem: Some(problem),
                canary: None,
                route: None,
                keda_missing: false,
            },
            selector: "sel".into(),
            url: "url".into(),
            cluster_url: None,
            now: &time(100),
        })
    }

    fn past_deadline(mut d: Deployment) -> Deployment {
        if let Some(s) = d.status.as_mut() {
            s.conditions = Some(vec![DeploymentCondition {
                type_: "Progressing".into(),
                status: "False".into(),
                reason: Some("ProgressDeadlineExceeded".into()),
                message: Some("ReplicaSet \"x\" has timed out progressing.".into()),
                ..DeploymentCondition::default()
            }]);
        }
        d
    }

    /// Stalled=True with `why`, Ready=False with `why`, Reconciling=False.
    fn assert_stalled(status: &ModelServerStatus, why: &str) {
        assert_eq!(get(status, "Stalled").status, "True");
        assert_eq!(get(status, "Stalled").reason, why);
        assert_eq!(get(status, "Ready").status, "False");
        assert_eq!(get(status, "Ready").reason, why);
        assert_eq!(get(status, "Reconciling").status, "False");
    }

    #[test]
    fn pod_problems_that_need_a_change_are_stalled_with_their_reason_and_message() {
        // The rollout of the new template is under way, old pods serve: still Stalled.
        let rolling = deployment(2, 2, 2, [3, 1, 2, 2]);
        for (problem, why) in [
            (secret_not_found(), "SecretNotFound"),
            (
                PodProblem::ContainerConfig {
                    at: at(),
                    message: "configmap \"x\" not found".into(),
                },
                "ContainerConfigError",
            ),
            (crash_loop(), "WorkerCrashLoop"),
        ] {
            let status = with_problem(&rolling, &problem, None);
            assert_stalled(&status, why);
            assert_eq!(get(&status, "Stalled").message, problem.message());
            assert_eq!(
                status.replicas,
                Some(3),
                "counts still follow the Deployment"
            );
        }
        let status = with_problem(&rolling, &crash_loop(), None);
        assert!(
            get(&status, "Stalled")
                .message
                .contains("container model of pod iris-7d9f-abcde keeps exiting")
        );
        assert!(
            get(&status, "Stalled")
                .message
                .ends_with("WorkerCrashLoop: worker 0 exited 6 times in 10m")
        );
    }

    #[test]
    fn a_crash_loop_is_never_ready_even_when_the_deployment_counts_look_fine() {
        // Between two restarts the Deployment may still count the pod as available.
        let status = with_problem(&deployment(1, 1, 1, [1, 1, 1, 1]), &crash_loop(), None);
        assert_stalled(&status, "WorkerCrashLoop");
    }

    #[test]
    fn an_image_pull_failure_is_reconciling_until_the_progress_deadline_then_stalled() {
        let pulling = deployment(2, 2, 1, [2, 1, 1, 1]);
        let status = with_problem(&pulling, &image_pull(), None);
        assert_eq!(get(&status, "Reconciling").status, "True");
        assert_eq!(get(&status, "Reconciling").reason, "ImagePullBackOff");
        assert!(
            get(&status, "Reconciling")
                .message
                .contains("cannot pull image \"registry.example.com/acme/iris:9.9\"")
        );
        assert_eq!(get(&status, "Ready").status, "False");
        assert_eq!(get(&status, "Stalled").status, "False");

        let stuck = with_problem(&past_deadline(pulling), &image_pull(), Some(&status));
        assert_stalled(&stuck, "ProgressDeadlineExceeded");
        assert_eq!(
            get(&stuck, "Stalled").message,
            format!(
                "the rollout made no progress within the deadline: {}",
                image_pull().message()
            )
        );
    }

    #[test]
    fn a_deadline_verdict_about_an_older_template_does_not_stall_an_image_pull() {
        // The Deployment's controller has not seen the new spec: its condition is stale.
        let stale = past_deadline(deployment(3, 2, 1, [1, 1, 0, 0]));
        let status = with_problem(&stale, &image_pull(), None);
        assert_eq!(get(&status, "Reconciling").reason, "ImagePullBackOff");
        assert_eq!(get(&status, "Stalled").status, "False");
    }

    #[test]
    fn a_missing_secret_or_a_crash_loop_explains_a_progress_deadline_better_than_the_deadline() {
        let stuck = past_deadline(deployment(2, 2, 1, [2, 1, 1, 1]));
        assert_stalled(
            &with_problem(&stuck, &secret_not_found(), None),
            "SecretNotFound",
        );
        assert_stalled(
            &with_problem(&stuck, &crash_loop(), None),
            "WorkerCrashLoop",
        );
    }

    #[test]
    fn the_status_recovers_to_ready_once_the_pods_are_fine() {
        let waiting = with_problem(
            &deployment(2, 2, 1, [2, 1, 1, 1]),
            &secret_not_found(),
            None,
        );
        assert_stalled(&waiting, "SecretNotFound");
        // The Secret was created: the kubelet started the container, the rollout finished.
        let ready = applied(&deployment(2, 2, 1, [1, 1, 1, 1]), Some(&waiting), 200);
        assert_eq!(get(&ready, "Ready").status, "True");
        assert_eq!(get(&ready, "Stalled").status, "False");
        assert_eq!(get(&ready, "Reconciling").status, "False");
        let flips: Vec<&str> = flipped(Some(&waiting), &ready)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(flips, ["Ready", "Reconciling", "Stalled"]);
    }

    #[test]
    fn last_transition_time_changes_only_on_a_flip() {
        let first = applied(&deployment(1, 1, 1, [1, 1, 1, 1]), None, 100);
        let again = applied(&deployment(1, 1, 1, [1, 1, 1, 1]), Some(&first), 200);
        assert_eq!(get(&again, "Ready").last_transition_time, time(100));
        assert!(same(Some(&first), &again));
        assert!(flipped(Some(&first), &again).is_empty());
        let rolling = applied(&deployment(2, 2, 1, [2, 1, 2, 2]), Some(&again), 300);
        assert_eq!(get(&rolling, "Ready").last_transition_time, time(300));
        // Stalled stayed False: its time stays, even though its neighbours flipped.
        assert_eq!(get(&rolling, "Stalled").last_transition_time, time(100));
        assert!(!same(Some(&again), &rolling));
        let flips: Vec<&str> = flipped(Some(&again), &rolling)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(flips, ["Ready", "Reconciling"]);
    }
}
