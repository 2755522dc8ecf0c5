//! The controller's caches: one reflector store per watched kind (the ModelServers, the five
//! kinds of children, the pods), filled by the watches that also trigger the reconciles, so a
//! reconcile reads what it compares against from memory and sends no GET.
//!
//! Two things keep the caches honest and the reconciles few:
//! - **Read your writes.** A store lags the API server by the time a watch event takes to arrive.
//!   Each [`Cache`] remembers what the operator itself last wrote to an object (an apply's answer,
//!   or a deletion) until its store moves past the version it held when the write was sent, so a
//!   reconcile never decides from a state older than its own writes. A store that moved on for
//!   another reason shows a newer state: at worst the operator applies once more (server-side apply
//!   is idempotent), it never skips a needed write.
//! - **News only.** A watch event triggers a reconcile only when the object's
//!   [fingerprint](Watched::fingerprint) (what a reconcile reads of it) differs from the last one
//!   seen, and the operator's own writes count as seen: the echo of its status write or of an
//!   apply does not reconcile again, nor does a status change of a child no reconcile reads. A
//!   deletion is always news.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use modelserver_crds::ModelServer;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::controller::{pod_watch, pods};
use crate::labels;
use crate::render::gateway::{Gateway, HTTPRoute};
use crate::render::keda::ScaledObject;

/// A kind the controller watches and caches.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// A hash of what a reconcile reads of the object: a watch event whose fingerprint equals the
    /// last one seen for the object carries no news and triggers nothing.
    fn fingerprint(&self) -> u64;

    /// The fingerprint of an object whose arrival or removal is no news either (pods without a
    /// problem); `None` when every new object and every deletion is news.
    fn quiet() -> Option<u64> {
        None
    }

    /// Drops what no reconcile reads before the object enters the store, so memory stays small.
    fn trim(&mut self) {
        self.meta_mut().managed_fields = None;
    }

    /// Whether a deletion triggers a reconcile (of the owner, for a child).
    const DELETION_IS_NEWS: bool = true;
}

impl Watched for ModelServer {
    /// Everything but the resource version and the managed fields: a status someone else wrote
    /// is news (the operator writes it back), the echo of the operator's own is not.
    fn fingerprint(&self) -> u64 {
        content_fingerprint(self.clone())
    }

    /// A deleted ModelServer has nothing left to reconcile: garbage collection removes its
    /// children.
    const DELETION_IS_NEWS: bool = false;
}

/// Where a FieldsV1 set names `spec.replicas`.
pub const REPLICAS_FIELD: &str = "/f:spec/f:replicas";

/// The revision the Deployment controller stamps on a Deployment (in its own update, before
/// the status update that reports the rollout): read by no reconcile.
const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";

impl Watched for Deployment {
    /// With the status: the ModelServer's status follows the Deployment's progress. Without the
    /// revision annotation of the Deployment controller.
    fn fingerprint(&self) -> u64 {
        let mut without = self.clone();
        if let Some(annotations) = without.metadata.annotations.as_mut() {
            annotations.remove(DEPLOYMENT_REVISION);
            if annotations.is_empty() {
                without.metadata.annotations = None;
            }
        }
        content_fingerprint(without)
    }

    /// Keeps of the managed fields only whether the operator's own apply owns `spec.replicas`,
    /// which decides the handover to an autoscaler (the whole field set of a Deployment is
    /// larger than the Deployment).
    fn trim(&mut self) {
        if let Some(fields) = self.metadata.managed_fields.as_mut() {
            fields.retain(|entry| {
                entry.manager.as_deref() == Some(labels::FIELD_MANAGER)
                    && entry.operation.as_deref() == Some("Apply")
            });
            for entry in fields.iter_mut() {
                let owns = entry
                    .fields_v1
                    .as_ref()
                    .is_some_and(|f| f.0.pointer(REPLICAS_FIELD).is_some());
                entry.fields_v1 = owns.then(|| FieldsV1(json!({"f:spec": {"f:replicas": {}}})));
            }
        }
    }
}

impl Watched for Service {
    /// Without the status, which no reconcile reads.
    fn fingerprint(&self) -> u64 {
        content_fingerprint(Self {
            status: None,
            ..self.clone()
        })
    }
}

impl Watched for HorizontalPodAutoscaler {
    /// Without the status, which the autoscaler rewrites as the load changes and no reconcile
    /// reads.
    fn fingerprint(&self) -> u64 {
        content_fingerprint(Self {
            status: None,
            ..self.clone()
        })
    }
}

impl Watched for PodDisruptionBudget {
    /// Without the status, which follows every pod's readiness and no reconcile reads.
    fn fingerprint(&self) -> u64 {
        content_fingerprint(Self {
            status: None,
            ..self.clone()
        })
    }
}

impl Watched for NetworkPolicy {
    /// The whole object (it has no status).
    fn fingerprint(&self) -> u64 {
        content_fingerprint(self.clone())
    }
}

impl Watched for HTTPRoute {
    /// With the status: RouteAccepted mirrors what the Gateways wrote there.
    fn fingerprint(&self) -> u64 {
        content_fingerprint(self.clone())
    }
}

impl Watched for ScaledObject {
    /// The whole object: KEDA's status is not read, but it changes rarely.
    fn fingerprint(&self) -> u64 {
        content_fingerprint(Self {
            status: None,
            ..self.clone()
        })
    }
}

impl Watched for Gateway {
    /// The listeners and addresses ([`Gateway`] holds nothing else), which make the routes'
    /// URLs; [`trim`](Watched::trim) has already left only the name, namespace and uid of the
    /// metadata (and the resource version, which the fingerprint leaves out).
    fn fingerprint(&self) -> u64 {
        content_fingerprint(self.clone())
    }

    /// Only the name and namespace of the metadata are read.
    fn trim(&mut self) {
        self.metadata = kube::api::ObjectMeta {
            name: self.metadata.name.take(),
            namespace: self.metadata.namespace.take(),
            uid: self.metadata.uid.take(),
            resource_version: self.metadata.resource_version.take(),
            ..kube::api::ObjectMeta::default()
        };
    }
}

impl Watched for Pod {
    /// The pod's problem as the status reports it ([`pods::diagnose`] of this pod alone), the
    /// only thing a reconcile reads of a pod: a pod being scheduled, started or turning ready
    /// is no news (the Deployment's status says so), a pod starting to crash is.
    fn fingerprint(&self) -> u64 {
        problem_fingerprint(pods::diagnose([self]).as_ref())
    }

    fn quiet() -> Option<u64> {
        Some(problem_fingerprint(None))
    }

    fn trim(&mut self) {
        pod_watch::trim(self);
    }
}

fn problem_fingerprint(problem: Option<&pods::PodProblem>) -> u64 {
    fnv1a(format!("{problem:?}").as_bytes())
}

/// The fingerprint of an object's JSON without its resource version and managed fields,
/// hashed as it is written (no JSON tree is built).
fn content_fingerprint<K: Resource + Serialize>(mut object: K) -> u64 {
    object.meta_mut().resource_version = None;
    object.meta_mut().managed_fields = None;
    let mut hasher = Fnv1a::default();
    if serde_json::to_writer(&mut hasher, &object).is_err() {
        // Never the case for Kubernetes objects; an unhashable object is always news.
        return fnv1a(b"unserializable");
    }
    hasher.0
}

/// FNV-1a over everything written to it.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(fnv1a(b""))
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = bytes.iter().fold(self.0, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 64-bit FNV-1a: a stable fingerprint (the same across Rust versions, unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a watch's trigger filter ([`Triggers`]) and the reconciles share about one kind: the
/// fingerprints last seen, by object uid, and the operator's own writes the store has not shown
/// yet (dropped when the watch reports the object deleted, so none outlives its object).
pub struct Seen<K: Watched> {
    fingerprints: Arc<Mutex<HashMap<String, u64>>>,
    written: Arc<Mutex<HashMap<ObjectRef<K>, Written<K>>>>,
}

impl<K: Watched> Clone for Seen<K> {
    fn clone(&self) -> Self {
        Self {
            fingerprints: self.fingerprints.clone(),
            written: self.written.clone(),
        }
    }
}

impl<K: Watched> Default for Seen<K> {
    fn default() -> Self {
        Self {
            fingerprints: Arc::default(),
            written: Arc::default(),
        }
    }
}

impl<K: Watched> Seen<K> {
    /// Records `fingerprint` for `uid`; true when that is news (it differs from the last one,
    /// or the object is new and not [quiet](Watched::quiet)). Quiet objects are not kept.
    fn update(&self, uid: String, fingerprint: u64, quiet: Option<u64>) -> bool {
        let mut fingerprints = lock(&self.fingerprints);
        if Some(fingerprint) == quiet {
            return fingerprints.remove(&uid).is_some();
        }
        fingerprints.insert(uid, fingerprint) != Some(fingerprint)
    }

    /// Forgets `uid`; true when its removal is news.
    fn remove(&self, uid: &str, quiet: Option<u64>) -> bool {
        let removed = lock(&self.fingerprints).remove(uid);
        quiet.is_none() || removed.is_some()
    }

    /// Records a state of an object the operator has seen (its own write's answer), so the
    /// watch event carrying the same state triggers nothing.
    fn saw(&self, object: &K) {
        if let Some(uid) = object.uid() {
            self.update(uid, object.fingerprint(), K::quiet());
        }
    }
}

/// The filter between a watch (after its reflector) and the controller: turns watch events into
/// the objects whose change is news (see the module documentation).
pub struct Triggers<K: Watched> {
    seen: Seen<K>,
    /// Objects of a relist, released once the relist is complete and the store holds them.
    listed: Vec<K>,
}

impl<K: Watched> Triggers<K> {
    /// A filter recording into `seen`.
    pub fn new(seen: Seen<K>) -> Self {
        Self {
            seen,
            listed: Vec::new(),
        }
    }

    /// The objects among those `event` brings whose change should trigger a reconcile.
    pub fn news(&mut self, event: watcher::Event<K>) -> Vec<K> {
        match event {
            watcher::Event::Apply(object) => self.changed(object).into_iter().collect(),
            watcher::Event::Delete(object) => {
                let uid = object.uid().unwrap_or_default();
                lock(&self.seen.written).remove(&ObjectRef::from_obj(&object));
                if self.seen.remove(&uid, K::quiet()) && K::DELETION_IS_NEWS {
                    vec![object]
                } else {
                    Vec::new()
                }
            }
            watcher::Event::Init => {
                self.listed.clear();
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if let Some(object) = self.changed(object) {
                    self.listed.push(object);
                }
                Vec::new()
            }
            watcher::Event::InitDone => std::mem::take(&mut self.listed),
        }
    }

    fn changed(&self, object: K) -> Option<K> {
        let uid = object.uid().unwrap_or_default();
        self.seen
            .update(uid, object.fingerprint(), K::quiet())
            .then_some(object)
    }
}

/// The watch of one kind: its events, trimmed, fill `writer`'s store, and the objects whose
/// change is news come out (the stream for `Controller::owns_stream` and friends).
pub fn watch<K: Watched>(
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    seen: Seen<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static {
    let mut triggers = Triggers::new(seen);
    watcher(api, config)
        .modify(K::trim)
        .reflect(writer)
        .flat_map(move |event| {
            let news: Vec<Result<K, watcher::Error>> = match event {
                Ok(event) => triggers.news(event).into_iter().map(Ok).collect(),
                Err(error) => vec![Err(error)],
            };
            futures::stream::iter(news)
        })
}

/// A write on its way to the API server (see [`Cache::sending`]).
pub struct Sending<K: Watched> {
    key: ObjectRef<K>,
    /// The resource version the store held when the write was sent (`None`: no object).
    over: Option<String>,
}

/// What the operator last wrote to one object, until the store catches up.
struct Written<K> {
    /// The resource version the store held when the write was sent (`None`: no object).
    over: Option<String>,
    /// The object as the write left it; `None` after a deletion.
    object: Option<Arc<K>>,
}

/// The cache of one kind: the reflector's store, the operator's own writes it has not seen yet,
/// and the fingerprints its watch compares against.
pub struct Cache<K: Watched> {
    store: Store<K>,
    seen: Seen<K>,
}

impl<K: Watched> Cache<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// A cache over `store`, its watch recording into `seen`.
    pub fn new(store: Store<K>, seen: Seen<K>) -> Self {
        Self { store, seen }
    }

    /// The store, as its watch filled it.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// The object `name` in `namespace` as the operator knows it: the store's, or the operator's
    /// own later write while the store has not caught up with it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key = ObjectRef::new(name).within(namespace);
        let cached = self.store.get(&key);
        let mut written = lock(&self.seen.written);
        if let Some(write) = written.get(&key) {
            if resource_version(cached.as_deref()) == write.over {
                return write.object.clone();
            }
            // The store moved on: it holds the write, or something newer.
            written.remove(&key);
        }
        cached
    }

    /// Notes a write the operator is about to send to `name` in `namespace`: the version the
    /// store holds now, which decides in [`wrote`](Self::wrote) whether the answer is newer than
    /// the store.
    pub fn sending(&self, namespace: &str, name: &str) -> Sending<K> {
        let key = ObjectRef::new(name).within(namespace);
        let over = resource_version(self.store.get(&key).as_deref());
        Sending { key, over }
    }

    /// Records the operator's own write: the object as the API server answered, or `None` for
    /// a deletion.
    ///
    /// The write is read back only while the store still holds the version it held when the
    /// write was sent. A store that moved meanwhile got there from the same watch that brings
    /// the write: it holds the write, a state after it (the Deployment controller's status
    /// update follows an apply within milliseconds), or, rarely, someone else's state from just
    /// before it, which the write's own event follows. In each case the store is the truth;
    /// pinning the answer instead would hide every later state until the object changed again.
    pub fn wrote(&self, sending: Sending<K>, object: Option<K>) {
        let Sending { key, over } = sending;
        let now = resource_version(self.store.get(&key).as_deref());
        let moved = now != over;
        let unchanged = object
            .as_ref()
            .is_some_and(|o| resource_version(Some(o)) == now);
        // Only a write still to come through the watch has an echo to silence: marking an answer
        // seen after the store moved past it would silence a later state that happens to look
        // like it.
        if let Some(object) = object.as_ref().filter(|_| !moved && !unchanged) {
            self.seen.saw(object);
        }
        let mut written = lock(&self.seen.written);
        if moved || unchanged {
            written.remove(&key);
            return;
        }
        let object = object.map(|mut object| {
            object.trim();
            Arc::new(object)
        });
        written.insert(key, Written { over, object });
    }

    /// Records a state of an object the operator has seen (its own status write's answer), so
    /// its echo triggers nothing.
    pub fn saw(&self, object: &K) {
        self.seen.saw(object);
    }
}

fn resource_version<K: Resource>(object: Option<&K>) -> Option<String> {
    object.and_then(|o| o.meta().resource_version.clone())
}

/// Every cache of the controller.
pub struct Caches {
    /// The ModelServers (the controller's own store).
    pub modelservers: Cache<ModelServer>,
    /// The Deployments the operator manages.
    pub deployments: Cache<Deployment>,
    /// The Services the operator manages.
    pub services: Cache<Service>,
    /// The HorizontalPodAutoscalers the operator manages.
    pub autoscalers: Cache<HorizontalPodAutoscaler>,
    /// The PodDisruptionBudgets the operator manages.
    pub budgets: Cache<PodDisruptionBudget>,
    /// The NetworkPolicies the operator manages.
    pub policies: Cache<NetworkPolicy>,
    /// The pods of the ModelServers, for the status.
    pub pods: Cache<Pod>,
    /// The HTTPRoutes the operator manages (filled only once the Gateway API is served).
    pub routes: Cache<HTTPRoute>,
    /// The Gateways, for the routes' URLs (filled only once the Gateway API is served).
    pub gateways: Cache<Gateway>,
    /// The KEDA ScaledObjects the operator manages (filled only once KEDA is served).
    pub scaled_objects: Cache<ScaledObject>,
}

/// The write halves of the [`Caches`]' stores with the fingerprints their watches share with
/// them: given to the watches (or, in tests, fed directly).
pub struct Feeds {
    /// ModelServers.
    pub modelservers: Feed<ModelServer>,
    /// Deployments.
    pub deployments: Feed<Deployment>,
    /// Services.
    pub services: Feed<Service>,
    /// HorizontalPodAutoscalers.
    pub autoscalers: Feed<HorizontalPodAutoscaler>,
    /// PodDisruptionBudgets.
    pub budgets: Feed<PodDisruptionBudget>,
    /// NetworkPolicies.
    pub policies: Feed<NetworkPolicy>,
    /// Pods.
    pub pods: Feed<Pod>,
    /// HTTPRoutes.
    pub routes: Feed<HTTPRoute>,
    /// Gateways.
    pub gateways: Feed<Gateway>,
    /// ScaledObjects.
    pub scaled_objects: Feed<ScaledObject>,
}

/// The write half of one cache: its store's writer and the fingerprints its watch records.
pub struct Feed<K: Watched> {
    /// The store's writer.
    pub writer: Writer<K>,
    /// The fingerprints shared with the cache.
    pub seen: Seen<K>,
}

fn cache<K: Watched>() -> (Cache<K>, Feed<K>) {
    let (store, writer) = reflector::store::<K>();
    let seen = Seen::default();
    (Cache::new(store, seen.clone()), Feed { writer, seen })
}

/// Why the caches are not usable.
#[derive(Debug, thiserror::Error)]
#[error("the watch of {0} has not listed them yet")]
pub struct NotListed(pub &'static str);

impl Caches {
    /// Empty caches and the feeds that fill them.
    pub fn new() -> (Self, Feeds) {
        let (modelservers, modelservers_feed) = cache();
        let (deployments, deployments_feed) = cache();
        let (services, services_feed) = cache();
        let (autoscalers, autoscalers_feed) = cache();
        let (budgets, budgets_feed) = cache();
        let (policies, policies_feed) = cache();
        let (pods, pods_feed) = cache();
        let (routes, routes_feed) = cache();
        let (gateways, gateways_feed) = cache();
        let (scaled_objects, scaled_objects_feed) = cache();
        (
            Self {
                modelservers,
                deployments,
                services,
                autoscalers,
                budgets,
                policies,
                pods,
                routes,
                gateways,
                scaled_objects,
            },
            Feeds {
                modelservers: modelservers_feed,
                deployments: deployments_feed,
                services: services_feed,
                autoscalers: autoscalers_feed,
                budgets: budgets_feed,
                policies: policies_feed,
                pods: pods_feed,
                routes: routes_feed,
                gateways: gateways_feed,
                scaled_objects: scaled_objects_feed,
            },
        )
    }

    /// Waits until every watch has listed its objects once (only ever waits at start-up), at
    /// most `limit`; an object absent from a store that has not listed yet may well exist. The
    /// Gateway API's watches count only when `gateway_api` (the cluster serves it), KEDA's only
    /// when `keda`.
    pub async fn listed(
        &self,
        limit: Duration,
        gateway_api: bool,
        keda: bool,
    ) -> Result<(), NotListed> {
        let all = async {
            if keda && !ready(&self.scaled_objects).await {
                return Err(NotListed("ScaledObjects"));
            }
            if gateway_api {
                if !ready(&self.routes).await {
                    return Err(NotListed("HTTPRoutes"));
                }
                if !ready(&self.gateways).await {
                    return Err(NotListed("Gateways"));
                }
            }
            let stores: [(&'static str, _); 7] = [
                ("ModelServers", ready(&self.modelservers).await),
                ("Deployments", ready(&self.deployments).await),
                ("Services", ready(&self.services).await),
                ("HorizontalPodAutoscalers", ready(&self.autoscalers).await),
                ("PodDisruptionBudgets", ready(&self.budgets).await),
                ("NetworkPolicies", ready(&self.policies).await),
                ("pods", ready(&self.pods).await),
            ];
            stores
                .into_iter()
                .find(|(_, ok)| !ok)
                .map_or(Ok(()), |(what, _)| Err(NotListed(what)))
        };
        tokio::time::timeout(limit, all)
            .await
            .unwrap_or(Err(NotListed("every kind")))
    }
}

async fn ready<K: Watched>(cache: &Cache<K>) -> bool {
    cache.store.wait_until_ready().await.is_ok()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ServiceSpec;
    use kube::api::ObjectMeta;

    use super::*;

    fn service(resource_version: &str, port: i32) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "iris", "namespace": "ml", "uid": "u1",
                "resourceVersion": resource_version,
                "managedFields": [{"manager": "kubectl", "operation": "Update"}],
            },
            "spec": {"ports": [{"port": port}]},
        }))
        .expect("a service")
    }

    fn ready_store<K: Watched>(feed: &mut Feed<K>, objects: Vec<K>) {
        feed.writer.apply_watcher_event(&watcher::Event::Init);
        for object in objects {
            feed.writer
                .apply_watcher_event(&watcher::Event::InitApply(object));
        }
        feed.writer.apply_watcher_event(&watcher::Event::InitDone);
    }

    #[test]
    fn a_write_is_read_back_until_the_store_moves_past_the_version_it_was_sent_over() {
        let (caches, mut feeds) = Caches::new();
        let services = &caches.services;
        ready_store(&mut feeds.services, vec![service("1", 80)]);
        services.wrote(services.sending("ml", "iris"), Some(service("2", 81)));
        let port = |s: Option<Arc<Service>>| {
            s.and_then(|s| s.spec.clone())
                .and_then(|s| s.ports)
                .map(|p| p[0].port)
        };
        assert_eq!(
            port(services.get("ml", "iris")),
            Some(81),
            "the store is stale"
        );
        // The watch delivers the write: the store is the truth again, also when it moves on.
        feeds
            .services
            .writer
            .apply_watcher_event(&watcher::Event::Apply(service("2", 81)));
        assert_eq!(port(services.get("ml", "iris")), Some(81));
        feeds
            .services
            .writer
            .apply_watcher_event(&watcher::Event::Apply(service("3", 82)));
        assert_eq!(port(services.get("ml", "iris")), Some(82));

        // A deletion reads back as absent until the store drops the object.
        services.wrote(services.sending("ml", "iris"), None);
        assert_eq!(services.get("ml", "iris"), None);
        feeds
            .services
            .writer
            .apply_watcher_event(&watcher::Event::Delete(service("3", 82)));
        assert_eq!(services.get("ml", "iris"), None);
        // A write the watch then reports deleted is forgotten with the object.
        services.wrote(services.sending("ml", "iris"), Some(service("4", 84)));
        let mut triggers = Triggers::<Service>::new(feeds.services.seen.clone());
        triggers.news(watcher::Event::Delete(service("4", 84)));
        assert_eq!(lock(&services.seen.written).len(), 0);
        // A new object created by someone else shows.
        feeds
            .services
            .writer
            .apply_watcher_event(&watcher::Event::Apply(service("5", 83)));
        assert_eq!(port(services.get("ml", "iris")), Some(83));
    }

    #[test]
    fn a_write_whose_answer_comes_after_the_store_moved_past_it_reads_the_store() {
        let (caches, mut feeds) = Caches::new();
        let services = &caches.services;
        ready_store(&mut feeds.services, vec![service("1", 80)]);
        let version = |s: Option<Arc<Service>>| s.and_then(|s| s.metadata.resource_version.clone());
        // The apply is sent; before its answer is processed the watch delivers it and then a
        // later change by someone else (as the Deployment controller's status update follows an
        // apply).
        let mut triggers = Triggers::<Service>::new(feeds.services.seen.clone());
        let mut deliver = |feed: &mut Feed<Service>, event: watcher::Event<Service>| {
            feed.writer.apply_watcher_event(&event);
            triggers.news(event).len()
        };
        let sending = services.sending("ml", "iris");
        for event in [service("2", 81), service("3", 82)] {
            deliver(&mut feeds.services, watcher::Event::Apply(event));
        }
        services.wrote(sending, Some(service("2", 81)));
        assert_eq!(
            version(services.get("ml", "iris")).as_deref(),
            Some("3"),
            "the answer hid a newer state the store already held"
        );
        assert_eq!(lock(&services.seen.written).len(), 0);
        // The answer came after its echo: a later state that looks like it is news.
        assert_eq!(
            deliver(&mut feeds.services, watcher::Event::Apply(service("4", 81))),
            1,
            "a change back to the written state was taken for the write's echo"
        );

        // A deletion whose object the store already dropped is not pinned either.
        let sending = services.sending("ml", "iris");
        deliver(
            &mut feeds.services,
            watcher::Event::Delete(service("4", 81)),
        );
        services.wrote(sending, None);
        deliver(&mut feeds.services, watcher::Event::Apply(service("5", 82)));
        assert_eq!(version(services.get("ml", "iris")).as_deref(), Some("5"));
    }

    #[test]
    fn only_news_triggers_and_the_operators_own_writes_are_no_news() {
        let (caches, feeds) = Caches::new();
        let mut triggers = Triggers::<Service>::new(feeds.services.seen.clone());
        let news = |t: &mut Triggers<Service>, e| t.news(e).len();
        assert_eq!(
            news(&mut triggers, watcher::Event::Apply(service("1", 80))),
            1,
            "new"
        );
        assert_eq!(
            news(&mut triggers, watcher::Event::Apply(service("2", 80))),
            0,
            "only the resource version changed"
        );
        let mut with_status = service("3", 80);
        with_status.status = Some(Default::default());
        assert_eq!(
            news(&mut triggers, watcher::Event::Apply(with_status)),
            0,
            "a Service's status is read by no reconcile"
        );
        assert_eq!(
            news(&mut triggers, watcher::Event::Apply(service("4", 8081))),
            1,
            "someone edited the port"
        );
        // The operator sets the port back; the echo of its apply is no news.
        caches.services.wrote(
            caches.services.sending("ml", "iris"),
            Some(service("5", 80)),
        );
        assert_eq!(
            news(&mut triggers, watcher::Event::Apply(service("5", 80))),
            0
        );
        assert_eq!(
            news(&mut triggers, watcher::Event::Delete(service("6", 80))),
            1,
            "a deletion is news"
        );
    }

    #[test]
    fn a_deleted_modelserver_triggers_nothing() {
        let (_caches, feeds) = Caches::new();
        let mut triggers = Triggers::<ModelServer>::new(feeds.modelservers.seen.clone());
        let object: ModelServer = serde_json::from_value(serde_json::json!({
            "apiVersion": "modelserver.dev/v1alpha1", "kind": "ModelServer",
            "metadata": {"name": "iris", "namespace": "ml", "uid": "m1"},
            "spec": {"image": "i", "model": {"command": ["python3"]}},
        }))
        .expect("a modelserver");
        assert_eq!(
            triggers.news(watcher::Event::Apply(object.clone())).len(),
            1
        );
        assert_eq!(triggers.news(watcher::Event::Delete(object)).len(), 0);
    }

    #[test]
    fn a_relist_triggers_what_changed_once_the_store_holds_it() {
        let (_caches, feeds) = Caches::new();
        let mut triggers = Triggers::<Service>::new(feeds.services.seen.clone());
        assert_eq!(triggers.news(watcher::Event::Init).len(), 0);
        assert_eq!(
            triggers
                .news(watcher::Event::InitApply(service("1", 80)))
                .len(),
            0,
            "held until the list is complete"
        );
        assert_eq!(triggers.news(watcher::Event::InitDone).len(), 1);
        triggers.news(watcher::Event::Init);
        triggers.news(watcher::Event::InitApply(service("9", 80)));
        assert_eq!(
            triggers.news(watcher::Event::InitDone).len(),
            0,
            "unchanged across the relist"
        );
    }

    #[test]
    fn pods_are_news_when_their_problem_changes() {
        let (_caches, feeds) = Caches::new();
        let mut triggers = Triggers::<Pod>::new(feeds.pods.seen.clone());
        let pod = |waiting: Option<&str>| -> Pod {
            let state = match waiting {
                Some(reason) => serde_json::json!({"waiting": {"reason": reason}}),
                None => serde_json::json!({"running": {}}),
            };
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "iris-1", "namespace": "ml", "uid": "p1"},
                "spec": {"containers": [{"name": "model", "image": "i"}]},
                "status": {"containerStatuses": [{
                    "name": "model", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0, "state": state,
                }]},
            }))
            .expect("a pod")
        };
        assert!(
            triggers
                .news(watcher::Event::Apply(pod(Some("ContainerCreating"))))
                .is_empty(),
            "a new pod without a problem"
        );
        assert!(
            triggers.news(watcher::Event::Apply(pod(None))).is_empty(),
            "running"
        );
        assert_eq!(
            triggers
                .news(watcher::Event::Apply(pod(Some("ImagePullBackOff"))))
                .len(),
            1
        );
        assert_eq!(
            triggers
                .news(watcher::Event::Delete(pod(Some("ImagePullBackOff"))))
                .len(),
            1,
            "its problem leaves with it"
        );
        assert!(triggers.news(watcher::Event::Delete(pod(None))).is_empty());
    }

    #[test]
    fn a_deployment_is_news_for_its_status_but_not_for_its_revision() {
        let deployment = |revision: Option<&str>, available: i32| -> Deployment {
            let mut d: Deployment = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "iris", "namespace": "ml", "uid": "d1"},
                "status": {"availableReplicas": available},
            }))
            .expect("a deployment");
            if let Some(revision) = revision {
                d.annotations_mut()
                    .insert(DEPLOYMENT_REVISION.into(), revision.into());
            }
            d
        };
        let (_caches, feeds) = Caches::new();
        let mut triggers = Triggers::<Deployment>::new(feeds.deployments.seen.clone());
        let mut news = |d| triggers.news(watcher::Event::Apply(d)).len();
        assert_eq!(news(deployment(None, 0)), 1);
        assert_eq!(news(deployment(Some("1"), 0)), 0);
        assert_eq!(news(deployment(Some("1"), 1)), 1, "progress");
    }

    #[test]
    fn the_deployment_store_keeps_only_the_operators_own_apply_entry() {
        let mut deployment: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "iris", "managedFields": [
                {"manager": "modelserver-operator", "operation": "Apply"},
                {"manager": "modelserver-operator-handover", "operation": "Apply"},
                {"manager": "kube-controller-manager", "operation": "Update"},
            ]},
        }))
        .expect("a deployment");
        deployment.trim();
        let managers: Vec<_> = deployment
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|m| m.manager.clone().unwrap_or_default())
            .collect();
        assert_eq!(managers, ["modelserver-operator"]);
        assert_eq!(
            deployment.metadata.managed_fields.expect("kept")[0].fields_v1,
            None,
            "it did not own the replicas"
        );
        let mut owner: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "iris", "managedFields": [{
                "manager": "modelserver-operator", "operation": "Apply",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}},
            }]},
        }))
        .expect("a deployment");
        owner.trim();
        let fields = owner.metadata.managed_fields.expect("kept")[0]
            .fields_v1
            .clone()
            .expect("fields");
        assert_eq!(fields.0, serde_json::json!({"f:spec": {"f:replicas": {}}}));
        let mut service = Service {
            metadata: ObjectMeta {
                managed_fields: Some(vec![Default::default()]),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec::default()),
            status: None,
        };
        service.trim();
        assert_eq!(service.metadata.managed_fields, None);
    }
}
