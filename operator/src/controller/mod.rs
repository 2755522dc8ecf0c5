//! The controller: watches ModelServers and the children they own, and reconciles each into
//! its rendered children plus a truthful status.

pub mod apply;
pub mod backoff;
pub mod cache;
pub mod optional_api;
pub mod pod_watch;
pub mod pods;
pub mod reconcile;
pub mod status;
pub mod traffic_status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client};
use modelserver_crds::ModelServer;

use kube::runtime::reflector::{ObjectRef, Store};

use crate::labels;
use crate::metrics::Metrics;
use crate::render::RenderConfig;
use crate::render::gateway::{Gateway, HTTPRoute};
use crate::render::keda::ScaledObject;

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("{action} {name}: {cause}")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// Which object.
        name: String,
        /// The client's error.
        cause: Box<kube::Error>,
    },
    /// A watch has not listed its objects within the wait, so the caches cannot say what
    /// exists: can the operator list and watch that kind?
    #[error("{0}: can the operator list and watch them?")]
    NotListed(#[from] cache::NotListed),
    /// An object could not be turned into JSON.
    #[error("serializing an object: {0}")]
    Serialize(serde_json::Error),
    /// The ModelServer could not be rendered for a reason other than its spec.
    #[error("rendering: {0}")]
    Render(crate::error::RenderError),
}

impl Error {
    /// A `map_err` adapter that names the action and the object.
    pub fn kube(action: &'static str, name: &str) -> impl FnOnce(kube::Error) -> Self {
        let name = name.to_owned();
        move |source| Self::Kube {
            action,
            name,
            cause: Box::new(source),
        }
    }
}

/// Where the controller looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    Cluster,
    /// One namespace.
    Namespace(String),
}

impl Scope {
    /// An Api over this scope.
    pub fn api<K>(&self, client: Client) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match self {
            Self::Cluster => Api::all(client),
            Self::Namespace(namespace) => Api::namespaced(client, namespace),
        }
    }
}

/// Settings of the controller.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// What and how to render.
    pub render: RenderConfig,
    /// Where to look.
    pub scope: Scope,
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Trailing-edge debounce of each ModelServer's reconcile triggers.
    pub debounce: Duration,
}

/// What every reconcile shares.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Settings.
    pub config: ControllerConfig,
    /// Metrics.
    pub metrics: Metrics,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Per-object failure counts, for exponential backoff.
    pub backoff: backoff::Backoff,
    /// What the watches know: the ModelServers, their children and their pods.
    pub caches: cache::Caches,
    /// Whether the cluster serves the Gateway API.
    pub gateway_api: optional_api::OptionalApi,
    /// Whether the cluster serves KEDA's API.
    pub keda: optional_api::OptionalApi,
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let owned = watcher::Config::default().labels(&labels::managed_by_selector());
    let scope = config.scope.clone();
    let (caches, feeds) = cache::Caches::new();
    let gateway_api = optional_api::discover(client.clone(), optional_api::GATEWAY_API).await;
    // The Gateway API's watches start once it is served (its CRDs are optional).
    let routes = {
        let (api, config, feed) = (
            scope.api::<HTTPRoute>(client.clone()),
            owned.clone(),
            feeds.routes,
        );
        gateway_api.once_present(move || cache::watch(api, config, feed.writer, feed.seen))
    };
    let gateways = {
        let (api, feed) = (scope.api::<Gateway>(client.clone()), feeds.gateways);
        gateway_api.once_present(move || {
            cache::watch(api, watcher::Config::default(), feed.writer, feed.seen)
        })
    };
    let keda = optional_api::discover(client.clone(), optional_api::KEDA).await;
    let scaled_objects = {
        let (api, config, feed) = (
            scope.api::<ScaledObject>(client.clone()),
            owned.clone(),
            feeds.scaled_objects,
        );
        keda.once_present(move || cache::watch(api, config, feed.writer, feed.seen))
    };
    let modelservers_store = caches.modelservers.store().clone();
    metrics.observe_modelservers(modelservers_store.clone());
    // Each watch fills its cache and triggers reconciles for news only ([`cache`]).
    let modelservers = cache::watch(
        scope.api::<ModelServer>(client.clone()),
        watcher::Config::default().any_semantic(),
        feeds.modelservers.writer,
        feeds.modelservers.seen,
    );
    let controller = Controller::for_stream(modelservers, caches.modelservers.store().clone())
        .owns_stream(cache::watch(
            scope.api::<Deployment>(client.clone()),
            owned.clone(),
            feeds.deployments.writer,
            feeds.deployments.seen,
        ))
        .owns_stream(cache::watch(
            scope.api::<Service>(client.clone()),
            owned.clone(),
            feeds.services.writer,
            feeds.services.seen,
        ))
        .owns_stream(cache::watch(
            scope.api::<HorizontalPodAutoscaler>(client.clone()),
            owned.clone(),
            feeds.autoscalers.writer,
            feeds.autoscalers.seen,
        ))
        .owns_stream(cache::watch(
            scope.api::<PodDisruptionBudget>(client.clone()),
            owned.clone(),
            feeds.budgets.writer,
            feeds.budgets.seen,
        ))
        .owns_stream(cache::watch(
            scope.api::<NetworkPolicy>(client.clone()),
            owned,
            feeds.policies.writer,
            feeds.policies.seen,
        ))
        .watches_stream(
            cache::watch(
                scope.api::<Pod>(client.clone()),
                pod_watch::config(),
                feeds.pods.writer,
                feeds.pods.seen,
            ),
            |pod: Pod| pod_watch::owner(&pod),
        )
        .owns_stream(routes)
        .watches_stream(gateways, move |gateway: Gateway| {
            routed_through(&modelservers_store, &gateway)
        })
        .owns_stream(scaled_objects)
        .reconcile_all_on(futures::stream::select(
            gateway_api.appeared(),
            keda.appeared(),
        ))
        .with_config(
            controller::Config::default()
                .concurrency(config.concurrency)
                .debounce(config.debounce),
        )
        .trigger_backoff(backoff::WatchBackoff::default())
        .graceful_shutdown_on(shutdown);
    let context = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: labels::OPERATOR_NAME.to_owned(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        client,
        config,
        metrics,
        backoff: backoff::Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
        caches,
        gateway_api,
        keda,
    });
    controller
        .run(reconcile::reconcile, reconcile::error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(object = %object, "reconciled"),
                Err(controller::Error::ReconcilerFailed(error, object)) => {
                    tracing::warn!(object = %object, %error, "reconcile failed; retrying with backoff");
                }
                Err(error) => tracing::warn!(%error, "controller"),
            }
        })
        .await;
    tracing::info!("controller stopped");
}

/// The ModelServers whose route names `gateway` (their own namespace when the reference has
/// none): a change to its listeners or addresses changes their URLs.
pub fn routed_through(
    modelservers: &Store<ModelServer>,
    gateway: &Gateway,
) -> Vec<ObjectRef<ModelServer>> {
    let (Some(name), Some(namespace)) = (
        gateway.metadata.name.as_deref(),
        gateway.metadata.namespace.as_deref(),
    ) else {
        return Vec::new();
    };
    modelservers
        .state()
        .iter()
        .filter(|object| {
            let own = object.metadata.namespace.as_deref().unwrap_or_default();
            object
                .spec
                .route
                .iter()
                .flat_map(|r| &r.parent_refs)
                .any(|parent| {
                    parent.name == name && parent.namespace.as_deref().unwrap_or(own) == namespace
                })
        })
        .map(|object| ObjectRef::from_obj(object.as_ref()))
        .collect()
}

// Not `#[from]`: that would also return the cause from `source()`, which the message already
// prints, and error chains would print it twice.
impl From<crate::error::RenderError> for Error {
    fn from(cause: crate::error::RenderError) -> Self {
        Self::Render(cause)
    }
}
