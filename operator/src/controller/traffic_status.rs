//! What the status says about the route and the canary: the `RouteAccepted` and `CanaryReady`
//! conditions, `status.canary`, and how both weigh on the kstatus conditions.
//!
//! The stable version decides `Ready` (it serves every request that does not go to a ready
//! canary). A canary being rolled out, or a route no Gateway has reported on yet, makes
//! `Reconciling` True (Argo CD: Progressing; kstatus: InProgress); a canary that cannot come up
//! (crash loop, missing Secret, progress deadline, name taken), a route a Gateway refused, or a
//! cluster without the Gateway API makes `Stalled` True (Argo CD: Degraded; kstatus: Failed). A
//! problem of the stable version is reported first.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use modelserver_crds::spec::RouteSpec;
use modelserver_crds::status::{CanaryStatus, ConditionStatus, ConditionType, Reason};

use crate::controller::pods::PodProblem;
use crate::controller::status::{self, ConditionState};
use crate::render::gateway::{ACCEPTED, HTTPRoute, ParentReference, RESOLVED_REFS};
use crate::render::route::parent_reference;

/// What the reconciler found of the canary.
#[derive(Debug, Clone)]
pub struct CanaryObservation<'a> {
    /// The canary's Deployment as the operator knows it; `None` when its name is taken by an
    /// object the ModelServer does not control.
    pub deployment: Option<&'a Deployment>,
    /// The worst problem of the canary's pods, if any.
    pub pod_problem: Option<&'a PodProblem>,
    /// The canary's image.
    pub image: &'a str,
    /// spec.canary.weight.
    pub weight: i32,
    /// The percentage of requests the canary gets now.
    pub traffic_percent: i32,
}

/// What the reconciler found of the route.
#[derive(Debug, Clone)]
pub enum RouteObservation<'a> {
    /// The cluster does not serve the Gateway API.
    ApiMissing,
    /// The route as the operator knows it (its status written by the Gateways' controllers).
    Route {
        /// spec.route.
        spec: &'a RouteSpec,
        /// The HTTPRoute.
        route: &'a HTTPRoute,
    },
}

/// The share of requests a canary gets: with a route, its weight once it is in the route
/// (`in_route`); behind the shared Service, its share of the ready pods.
pub fn traffic_percent(
    routed: bool,
    in_route: bool,
    weight: i32,
    canary_ready: i32,
    stable_ready: i32,
) -> i32 {
    if routed {
        return if in_route { weight } else { 0 };
    }
    let total = canary_ready + stable_ready;
    if total <= 0 {
        return 0;
    }
    (canary_ready * 200 + total) / (2 * total)
}

/// `status.canary` for `canary`.
pub fn canary_status(canary: &CanaryObservation<'_>) -> CanaryStatus {
    let observed = canary
        .deployment
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    CanaryStatus {
        image: canary
            .deployment
            .and_then(status::model_image)
            .or_else(|| Some(canary.image.to_owned())),
        replicas: Some(observed.replicas.unwrap_or(0)),
        ready_replicas: Some(observed.ready_replicas.unwrap_or(0)),
        weight: Some(canary.weight),
        traffic_percent: Some(canary.traffic_percent),
    }
}

/// Adds `CanaryReady` to `states` and lets the canary's progress or problem show in
/// Reconciling or Stalled.
pub fn with_canary(states: &mut Vec<ConditionState>, canary: &CanaryObservation<'_>) {
    let own = match canary.deployment {
        None => status::stalled(
            Reason::NameConflict,
            "a Deployment, Service or NetworkPolicy named <name>-canary exists that this ModelServer does not control: rename or remove it",
        ),
        Some(deployment) => {
            let caught_up = status::deployment_caught_up(deployment);
            match canary.pod_problem {
                Some(problem) => status::problem_states(deployment, caught_up, problem),
                None => status::rollout_states(deployment, caught_up),
            }
        }
    };
    let Some(ready) = find(&own, ConditionType::Ready) else {
        return;
    };
    let message = format!(
        "{}; the canary takes {}% of the requests (weight {})",
        ready.message, canary.traffic_percent, canary.weight
    );
    let canary_ready = ConditionState {
        type_: ConditionType::CanaryReady,
        status: ready.status,
        reason: ready.reason,
        message: format!("the canary: {message}"),
    };
    if let Some(stalled) =
        find(&own, ConditionType::Stalled).filter(|s| s.status == ConditionStatus::True)
    {
        escalate(
            states,
            ConditionType::Stalled,
            stalled.reason,
            format!("the canary: {}", stalled.message),
        );
    } else if find(&own, ConditionType::Reconciling)
        .is_some_and(|r| r.status == ConditionStatus::True)
    {
        escalate(
            states,
            ConditionType::Reconciling,
            Reason::CanaryRollout,
            format!("the canary: {}", ready.message),
        );
    }
    states.push(canary_ready);
}

/// Adds `RouteAccepted` to `states` from what the Gateways wrote on the route, and lets a
/// pending route show in Reconciling and a refused one in Stalled.
pub fn with_route(states: &mut Vec<ConditionState>, route: &RouteObservation<'_>) {
    let (status, reason, message) = route_verdict(route);
    match status {
        ConditionStatus::False => escalate(states, ConditionType::Stalled, reason, message.clone()),
        ConditionStatus::Unknown => {
            escalate(states, ConditionType::Reconciling, reason, message.clone())
        }
        ConditionStatus::True => {}
    }
    states.push(ConditionState {
        type_: ConditionType::RouteAccepted,
        status,
        reason,
        message,
    });
}

fn route_verdict(route: &RouteObservation<'_>) -> (ConditionStatus, Reason, String) {
    let (spec, route) = match route {
        RouteObservation::ApiMissing => {
            return (
                ConditionStatus::False,
                Reason::GatewayApiMissing,
                "the cluster does not serve the Gateway API (gateway.networking.k8s.io/v1): install its CRDs and a Gateway controller, or remove spec.route".to_owned(),
            );
        }
        RouteObservation::Route { spec, route } => (spec, route),
    };
    let namespace = route.metadata.namespace.as_deref().unwrap_or_default();
    let generation = route.metadata.generation;
    let parents = route
        .status
        .as_ref()
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    for wanted in &spec.parent_refs {
        let wanted = parent_reference(wanted);
        let gateway = format!(
            "Gateway {}/{}",
            wanted.namespace.as_deref().unwrap_or(namespace),
            wanted.name
        );
        let entry = parents
            .iter()
            .find(|p| same_parent(&p.parent_ref, &wanted, namespace));
        let current = |type_: &str| {
            entry.and_then(|e| {
                e.conditions
                    .iter()
                    .find(|c| c.type_ == type_)
                    .filter(|c| generation.is_none() || c.observed_generation >= generation)
            })
        };
        let accepted = current(ACCEPTED);
        let resolved = current(RESOLVED_REFS);
        match (accepted, resolved) {
            (Some(a), _) if a.status == "False" => {
                return (
                    ConditionStatus::False,
                    Reason::RouteNotAccepted,
                    said(&gateway, "did not accept the route", a),
                );
            }
            (_, Some(r)) if r.status == "False" => {
                return (
                    ConditionStatus::False,
                    Reason::RefsNotResolved,
                    said(&gateway, "cannot resolve the route's backends", r),
                );
            }
            (Some(a), Some(r)) if a.status == "True" && r.status == "True" => {}
            _ => {
                return (
                    ConditionStatus::Unknown,
                    Reason::RoutePending,
                    format!(
                        "waiting for the controller of {gateway} to report on the route's current generation"
                    ),
                );
            }
        }
    }
    (
        ConditionStatus::True,
        Reason::Accepted,
        format!(
            "accepted by {} and its backends resolved",
            spec.parent_refs
                .iter()
                .map(|p| format!(
                    "Gateway {}/{}",
                    p.namespace.as_deref().unwrap_or(namespace),
                    p.name
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

fn said(gateway: &str, what: &str, condition: &Condition) -> String {
    format!(
        "{gateway} {what}: {}: {}",
        condition.reason, condition.message
    )
}

/// Whether a status entry's parentRef is the one the spec names (the API server defaults the
/// namespace to the route's).
fn same_parent(reported: &ParentReference, wanted: &ParentReference, namespace: &str) -> bool {
    reported.name == wanted.name
        && reported.namespace.as_deref().unwrap_or(namespace)
            == wanted.namespace.as_deref().unwrap_or(namespace)
        && reported.section_name == wanted.section_name
        && reported.port == wanted.port
}

fn find(states: &[ConditionState], type_: ConditionType) -> Option<&ConditionState> {
    states.iter().find(|s| s.type_ == type_)
}

/// Makes `type_` (Stalled or Reconciling) True for `reason` unless the stable version already
/// reports a problem or progress there. Stalled and Reconciling are never both True: a Stalled
/// makes Reconciling False, and Reconciling is not raised over a Stalled.
pub fn escalate(
    states: &mut [ConditionState],
    type_: ConditionType,
    reason: Reason,
    message: String,
) {
    let is_true = |states: &[ConditionState], t| {
        find(states, t).is_some_and(|s| s.status == ConditionStatus::True)
    };
    if is_true(states, ConditionType::Stalled) || is_true(states, type_) {
        return;
    }
    for state in states.iter_mut() {
        if state.type_ == type_ {
            state.status = ConditionStatus::True;
            state.reason = reason;
            state.message.clone_from(&message);
        } else if type_ == ConditionType::Stalled && state.type_ == ConditionType::Reconciling {
            state.status = ConditionStatus::False;
            state.reason = reason;
            state.message = "waiting for a change to the spec or the cluster".to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canarys_share_is_its_route_weight_once_routed_else_its_share_of_ready_pods() {
        assert_eq!(traffic_percent(true, true, 10, 1, 4), 10);
        assert_eq!(
            traffic_percent(true, false, 10, 1, 4),
            0,
            "not in the route yet"
        );
        assert_eq!(traffic_percent(false, false, 34, 1, 2), 33);
        assert_eq!(traffic_percent(false, false, 50, 2, 1), 67);
        assert_eq!(traffic_percent(false, false, 50, 0, 3), 0);
        assert_eq!(traffic_percent(false, false, 50, 0, 0), 0);
    }

    fn states(reconciling: bool, stalled: bool) -> Vec<ConditionState> {
        let state = |type_, on: bool| ConditionState {
            type_,
            status: ConditionStatus::from(on),
            reason: Reason::Idle,
            message: String::new(),
        };
        vec![
            state(ConditionType::Ready, !reconciling && !stalled),
            state(ConditionType::Reconciling, reconciling),
            state(ConditionType::Stalled, stalled),
        ]
    }

    fn of(states: &[ConditionState], type_: ConditionType) -> (ConditionStatus, Reason) {
        let s = find(states, type_).expect("condition");
        (s.status, s.reason)
    }

    #[test]
    fn a_problem_elsewhere_never_hides_the_stable_versions_own_and_never_sets_both() {
        // The stable version rolls out: a refused route does not override its Reconciling,
        // but Stalled (a change is needed) wins and Reconciling goes False.
        let mut rolling = states(true, false);
        escalate(
            &mut rolling,
            ConditionType::Stalled,
            Reason::RouteNotAccepted,
            "no".into(),
        );
        assert_eq!(
            of(&rolling, ConditionType::Stalled),
            (ConditionStatus::True, Reason::RouteNotAccepted)
        );
        assert_eq!(
            of(&rolling, ConditionType::Reconciling).0,
            ConditionStatus::False
        );
        // The stable version is stalled: its reason stays.
        let mut stalled = states(false, true);
        escalate(
            &mut stalled,
            ConditionType::Stalled,
            Reason::RouteNotAccepted,
            "no".into(),
        );
        escalate(
            &mut stalled,
            ConditionType::Reconciling,
            Reason::CanaryRollout,
            "up".into(),
        );
        assert_eq!(
            of(&stalled, ConditionType::Stalled),
            (ConditionStatus::True, Reason::Idle)
        );
        assert_eq!(
            of(&stalled, ConditionType::Reconciling).0,
            ConditionStatus::False
        );
        // Ready stays the stable version's.
        let mut ready = states(false, false);
        escalate(
            &mut ready,
            ConditionType::Reconciling,
            Reason::CanaryRollout,
            "up".into(),
        );
        assert_eq!(of(&ready, ConditionType::Ready).0, ConditionStatus::True);
        assert_eq!(
            of(&ready, ConditionType::Reconciling),
            (ConditionStatus::True, Reason::CanaryRollout)
        );
    }
}
