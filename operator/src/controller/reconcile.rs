//! One reconcile of one ModelServer: validate, apply the rendered children where they differ
//! from the cached ones (deleting the ones no longer asked for), read what its pods are doing
//! from the pod watch's cache, then write the status if it changed and publish an Event for each
//! condition that flipped. At rest it sends no request at all.
//!
//! The operator never reads Secrets: a missing auth Secret shows in the pods (the kubelet's
//! `CreateContainerConfigError`), and the Deployment rolls with maxUnavailable 0 by default, so
//! the old pods keep serving while the new ones wait for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use modelserver_crds::status::{ConditionStatus, ConditionType};
use modelserver_crds::{API_VERSION, KIND, ModelServer, ModelServerStatus, validate};
use serde_json::json;

use crate::controller::cache::{Cache, Watched};
use crate::controller::status::{self, Observation};
use crate::controller::traffic_status::{self, CanaryObservation, RouteObservation};
use crate::controller::{Context, Error, apply, pod_watch, pods};
use crate::error::RenderError;
use crate::labels;
use crate::metrics::{RESULT_ERROR, RESULT_SUCCESS};
use crate::render::gateway::HTTPRoute;
use crate::render::keda::ScaledObject;
use crate::render::{self, Observed, meta};
use crate::text;

/// Periodic re-check of a healthy object (reads only; writes happen only on a difference).
const RESYNC: Duration = Duration::from_secs(600);
/// The API server refuses an Event whose note is longer (events.k8s.io/v1 validation); a
/// condition quoting a termination message can be.
const EVENT_NOTE_MAX_BYTES: usize = 1024;
/// Ends a note that was cut.
const CUT_MARK: &str = " ...";

/// How long a reconcile waits for the watches' first lists (only ever at start-up).
const CACHES_LISTED_WAIT: Duration = Duration::from_secs(30);

/// Reconciles one ModelServer; called by the controller.
pub async fn reconcile(object: Arc<ModelServer>, context: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    context
        .metrics
        .set_managed(context.caches.modelservers.store().len());
    let result = reconcile_object(&object, &context).await;
    let key = object_key(&object);
    match &result {
        Ok(_) => {
            context.backoff.succeeded(&key);
            context
                .metrics
                .record_reconcile(RESULT_SUCCESS, started.elapsed());
        }
        Err(_) => context
            .metrics
            .record_reconcile(RESULT_ERROR, started.elapsed()),
    }
    result
}

/// What to do after a failed reconcile: retry after a per-object exponential backoff.
pub fn error_policy(object: Arc<ModelServer>, error: &Error, context: Arc<Context>) -> Action {
    let delay = context.backoff.failed(&object_key(&object));
    tracing::warn!(object = %object_key(&object), %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn object_key(object: &ModelServer) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

async fn reconcile_object(object: &ModelServer, context: &Context) -> Result<Action, Error> {
    let name = object.name_any();
    let Some(namespace) = object.namespace() else {
        return Ok(Action::await_change());
    };
    if object.meta().deletion_timestamp.is_some() {
        // Garbage collection removes the children through their ownerReferences.
        return Ok(Action::await_change());
    }
    let selector = meta::selector_string(&name);
    let cluster_url = render::service::url(
        object,
        &name,
        &namespace,
        &context.config.render.cluster_domain,
    );
    let mut urls = Urls {
        url: cluster_url.clone(),
        cluster_url: None,
    };

    // A stored object can predate a validation rule: report it rather than render it.
    let violations = validate::validate(object);
    if !violations.is_empty() {
        let message = violations
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let observation = Observation::InvalidSpec { message };
        write_status(object, context, &observation, selector, urls).await?;
        return Ok(Action::await_change());
    }

    // The children are compared with the caches: wait for every watch's first list (only ever
    // at start-up), so that an object not in a cache does not exist.
    let gateway_api = context.gateway_api.present();
    let keda = context.keda.present();
    context
        .caches
        .listed(CACHES_LISTED_WAIT, gateway_api, keda)
        .await?;
    let caches = &context.caches;
    let uid = object.uid().unwrap_or_default();
    let canary_name = render::canary::name(&name);
    let cached_canary = caches
        .deployments
        .get(&namespace, &canary_name)
        .filter(|d| controlled_by(d.as_ref(), &uid));
    let observed = Observed {
        stable_replicas: caches
            .deployments
            .get(&namespace, &name)
            .and_then(|d| d.spec.as_ref().and_then(|s| s.replicas)),
        canary_available: cached_canary.as_deref().map_or(0, available_pods),
    };
    let children = match render::render_observed(object, &context.config.render, observed) {
        Ok(children) => children,
        Err(RenderError::InvalidSpec { message }) => {
            write_status(
                object,
                context,
                &Observation::InvalidSpec { message },
                selector,
                urls,
            )
            .await?;
            return Ok(Action::await_change());
        }
        Err(error) => return Err(error.into()),
    };

    let client = context.client.clone();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let services = Api::<Service>::namespaced(client.clone(), &namespace);
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &namespace);
    let deployment = apply::apply_deployment(
        &deployments,
        &caches.deployments,
        &namespace,
        &children.deployment,
    )
    .await?;
    apply::apply(&services, &caches.services, &namespace, &children.service).await?;
    let autoscalers = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), &namespace);
    match &children.autoscaler {
        Some(autoscaler) => {
            apply::apply(&autoscalers, &caches.autoscalers, &namespace, autoscaler).await?;
        }
        None => {
            apply::delete_owned(&autoscalers, &caches.autoscalers, &namespace, &name, &uid).await?;
        }
    }
    if keda {
        let scaled_objects = Api::<ScaledObject>::namespaced(client.clone(), &namespace);
        apply_or_delete(
            &scaled_objects,
            &caches.scaled_objects,
            &namespace,
            &name,
            &uid,
            children.scaled_object.as_ref(),
        )
        .await?;
    }
    let keda_missing = children.scaled_object.is_some() && !keda;
    let budgets = Api::<PodDisruptionBudget>::namespaced(client.clone(), &namespace);
    match &children.disruption_budget {
        Some(budget) => {
            apply::apply(&budgets, &caches.budgets, &namespace, budget).await?;
        }
        None => {
            apply::delete_owned(&budgets, &caches.budgets, &namespace, &name, &uid).await?;
        }
    }
    apply_or_delete(
        &policies,
        &caches.policies,
        &namespace,
        &name,
        &uid,
        children.network_policy.as_ref(),
    )
    .await?;

    // The canary: its children apply only where no one else's object has their name.
    let canary = match &children.canary {
        Some(canary) => {
            let taken = name_taken(&caches.deployments, &namespace, &canary_name, &uid)
                || name_taken(&caches.services, &namespace, &canary_name, &uid)
                || name_taken(&caches.policies, &namespace, &canary_name, &uid);
            if taken {
                None
            } else {
                let applied = apply::apply(
                    &deployments,
                    &caches.deployments,
                    &namespace,
                    &canary.deployment,
                )
                .await?;
                apply_or_delete(
                    &services,
                    &caches.services,
                    &namespace,
                    &canary_name,
                    &uid,
                    canary.service.as_ref(),
                )
                .await?;
                apply_or_delete(
                    &policies,
                    &caches.policies,
                    &namespace,
                    &canary_name,
                    &uid,
                    canary.network_policy.as_ref(),
                )
                .await?;
                Some(applied)
            }
        }
        None => {
            apply::delete_owned(
                &deployments,
                &caches.deployments,
                &namespace,
                &canary_name,
                &uid,
            )
            .await?;
            apply::delete_owned(&services, &caches.services, &namespace, &canary_name, &uid)
                .await?;
            apply::delete_owned(&policies, &caches.policies, &namespace, &canary_name, &uid)
                .await?;
            None
        }
    };

    // The route, once the cluster serves the Gateway API.
    let route = if gateway_api {
        let routes = Api::<HTTPRoute>::namespaced(client, &namespace);
        match &children.route {
            Some(route) => Some(apply::apply(&routes, &caches.routes, &namespace, route).await?),
            None => {
                apply::delete_owned(&routes, &caches.routes, &namespace, &name, &uid).await?;
                None
            }
        }
    } else {
        None
    };
    if let Some(spec) = &object.spec.route {
        let gateway = spec.parent_refs.first().and_then(|parent| {
            let gateway_namespace = parent.namespace.as_deref().unwrap_or(&namespace);
            caches.gateways.get(gateway_namespace, &parent.name)
        });
        if let Some(url) = render::route::url(spec, gateway.as_deref()) {
            urls = Urls {
                url,
                cluster_url: Some(cluster_url),
            };
        }
    }

    // From the pod watch's cache: its events trigger this reconcile, so no GET or LIST is needed.
    let pods = caches
        .pods
        .store()
        .state_filter(|pod| pod_watch::belongs_to(pod, &namespace, &name));
    let (canary_pods, stable_pods): (Vec<_>, Vec<_>) =
        pods.iter().partition(|pod| pod_watch::is_canary(pod));
    let problem = pods::diagnose(stable_pods.iter().map(|p| p.as_ref()));
    let canary_problem = pods::diagnose(canary_pods.iter().map(|p| p.as_ref()));
    let canary_observation = object
        .spec
        .canary
        .as_ref()
        .zip(children.canary.as_ref())
        .map(|(spec, rendered)| {
            let ready = |d: Option<&Deployment>| {
                d.and_then(|d| d.status.as_ref())
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0)
            };
            let in_route = children
                .route
                .as_ref()
                .is_some_and(|r| r.spec.rules.iter().any(|rule| rule.backend_refs.len() > 1));
            CanaryObservation {
                deployment: canary.as_deref(),
                pod_problem: canary_problem.as_ref(),
                image: &rendered.image,
                weight: spec.weight,
                traffic_percent: traffic_status::traffic_percent(
                    object.spec.route.is_some(),
                    in_route,
                    spec.weight,
                    ready(canary.as_deref()),
                    ready(Some(deployment.as_ref())),
                ),
            }
        });
    let route_observation = match (&object.spec.route, &route) {
        (None, _) => None,
        (Some(_), _) if !gateway_api => Some(RouteObservation::ApiMissing),
        (Some(spec), Some(route)) => Some(RouteObservation::Route {
            spec,
            route: route.as_ref(),
        }),
        (Some(_), None) => None,
    };
    let observation = Observation::Applied {
        deployment: deployment.as_ref(),
        pod_problem: problem.as_ref(),
        canary: canary_observation,
        route: route_observation,
        keda_missing,
    };
    write_status(object, context, &observation, selector, urls).await?;
    Ok(Action::requeue(RESYNC))
}

/// `status.url`, and the Service's URL when that is the route's.
struct Urls {
    url: String,
    cluster_url: Option<String>,
}

/// Applies `desired` (named `name`), or deletes the child of that name this ModelServer owns.
async fn apply_or_delete<K>(
    api: &Api<K>,
    cache: &Cache<K>,
    namespace: &str,
    name: &str,
    owner_uid: &str,
    desired: Option<&K>,
) -> Result<(), Error>
where
    K: Watched,
{
    match desired {
        Some(desired) => {
            apply::apply(api, cache, namespace, desired).await?;
        }
        None => {
            apply::delete_owned(api, cache, namespace, name, owner_uid).await?;
        }
    }
    Ok(())
}

/// Whether an object the ModelServer `owner_uid` does not control holds `name`.
fn name_taken<K: Watched>(cache: &Cache<K>, namespace: &str, name: &str, owner_uid: &str) -> bool {
    cache
        .get(namespace, name)
        .is_some_and(|object| !controlled_by(object.as_ref(), owner_uid))
}

/// Whether `object`'s controller is the ModelServer `owner_uid`.
fn controlled_by<K: Resource>(object: &K, owner_uid: &str) -> bool {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid)
}

/// A Deployment's available pods.
fn available_pods(deployment: &Deployment) -> i32 {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Computes the status and writes it through the status subresource only if it changed, then
/// publishes an Event for each condition that flipped.
async fn write_status(
    object: &ModelServer,
    context: &Context,
    observation: &Observation<'_>,
    selector: String,
    urls: Urls,
) -> Result<(), Error> {
    let previous = object.status.as_ref();
    let now = Time(jiff::Timestamp::now());
    let status = status::compute(status::Inputs {
        generation: object.meta().generation,
        previous,
        observation,
        selector,
        url: urls.url,
        cluster_url: urls.cluster_url,
        now: &now,
    });
    if status::same(previous, &status) {
        return Ok(());
    }
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    let api = Api::<ModelServer>::namespaced(context.client.clone(), &namespace);
    let patch = json!({"apiVersion": API_VERSION, "kind": KIND, "status": status});
    let written = api
        .patch_status(
            &name,
            &PatchParams::apply(labels::FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::kube("write the status of", &name))?;
    // The echo of this write on the ModelServer watch is no news: it triggers no reconcile.
    context.caches.modelservers.saw(&written);
    publish_transitions(object, context, previous, &status).await;
    Ok(())
}

async fn publish_transitions(
    object: &ModelServer,
    context: &Context,
    previous: Option<&ModelServerStatus>,
    status: &ModelServerStatus,
) {
    let reference = object.object_ref(&());
    for changed in status::flipped(previous, status) {
        let Some(type_) = event_type(changed, previous.is_some()) else {
            continue;
        };
        let event = Event {
            type_,
            reason: changed.reason.clone(),
            note: Some(event_note(changed)),
            action: format!("{}{}", changed.type_, changed.status),
            secondary: None,
        };
        if let Err(error) = context.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, object = %object_key(object), "publishing an event");
        }
    }
}

/// The type of the Event for a condition that flipped, or `None` for the quiet states
/// (Reconciling=False, Stalled=False). A warning for Stalled=True, and for Ready=False when the
/// ModelServer had a status before (a first status is not a loss of readiness).
fn event_type(changed: &Condition, had_status: bool) -> Option<EventType> {
    let type_ = changed.type_.parse::<ConditionType>().ok()?;
    let status = changed.status.parse::<ConditionStatus>().ok()?;
    match (type_, status) {
        (ConditionType::Reconciling | ConditionType::Stalled, ConditionStatus::False) => None,
        (ConditionType::Stalled, ConditionStatus::True) => Some(EventType::Warning),
        (ConditionType::Ready, ConditionStatus::False) if had_status => Some(EventType::Warning),
        _ => Some(EventType::Normal),
    }
}

/// The note of the Event for a condition that flipped, `Type=Status: message`, cut to what the
/// API server accepts (the condition keeps the whole message).
fn event_note(condition: &Condition) -> String {
    let note = format!(
        "{}={}: {}",
        condition.type_, condition.status, condition.message
    );
    if note.len() <= EVENT_NOTE_MAX_BYTES {
        return note;
    }
    let kept = text::head(&note, EVENT_NOTE_MAX_BYTES - CUT_MARK.len());
    format!("{kept}{CUT_MARK}")
}

#[cfg(test)]
mod tests {

    use super::*;

    fn condition(message: String) -> Condition {
        Condition {
            type_: "Stalled".into(),
            status: "True".into(),
            reason: "WorkerCrashLoop".into(),
            message,
            observed_generation: Some(1),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        }
    }

    fn flip(type_: ConditionType, status: ConditionStatus) -> Condition {
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            ..condition(String::new())
        }
    }

    #[test]
    fn flips_to_a_problem_warn_and_the_quiet_states_publish_nothing() {
        use ConditionStatus::{False, True};
        use ConditionType::{Ready, Reconciling, Stalled};
        let kind = |type_, status, had_status| event_type(&flip(type_, status), had_status);
        assert_eq!(kind(Stalled, True, false), Some(EventType::Warning));
        assert_eq!(kind(Ready, False, true), Some(EventType::Warning));
        assert_eq!(
            kind(Ready, False, false),
            Some(EventType::Normal),
            "a first status is no loss of readiness"
        );
        assert_eq!(kind(Ready, True, true), Some(EventType::Normal));
        assert_eq!(kind(Reconciling, True, true), Some(EventType::Normal));
        assert_eq!(kind(Reconciling, False, true), None);
        assert_eq!(kind(Stalled, False, true), None);
    }

    #[test]
    fn an_event_note_fits_the_api_servers_limit() {
        assert_eq!(
            event_note(&condition("short".into())),
            "Stalled=True: short"
        );
        let long = event_note(&condition("é".repeat(2000)));
        assert!(long.len() <= EVENT_NOTE_MAX_BYTES, "{}", long.len());
        assert!(long.starts_with("Stalled=True: éé"));
        assert!(long.ends_with(CUT_MARK));
    }
}
