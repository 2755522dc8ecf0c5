//! Server-side apply of the children, under one field manager, with force (the Kubernetes docs'
//! advice for controllers), and only when something differs from the cached child (see
//! [`cache`](crate::controller::cache)): an unchanged object costs no request at all, so a
//! restarted or idle operator sends nothing.
//!
//! "Differs" is decided twice. A fingerprint of the applied object in an annotation catches a
//! field the operator stopped setting (absent from the new object, still in the live one). A
//! subset check of the desired object against the live one catches a managed field someone else
//! changed (drift), while fields others added (an annotation, a defaulted field) are left alone.
//! A cache that lags behind the API server costs at most one redundant apply: server-side apply
//! of the same object is idempotent.

use std::hash::Hash;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde_json::{Value, json};

use crate::controller::Error;
use crate::controller::cache::{Cache, REPLICAS_FIELD, Watched, fnv1a};
use crate::labels;

/// Annotation holding the fingerprint of what the operator last applied.
pub const APPLIED_HASH_ANNOTATION: &str = "modelserver.dev/applied-hash";
/// Field manager that briefly co-owns a Deployment's replicas while an autoscaler takes over.
pub const REPLICAS_HANDOVER_MANAGER: &str = "modelserver-operator-handover";

/// Applies `desired` in `namespace` unless the cached object already matches it; returns the
/// object as the operator now knows it.
pub async fn apply<K>(
    api: &Api<K>,
    cache: &Cache<K>,
    namespace: &str,
    desired: &K,
) -> Result<Arc<K>, Error>
where
    K: Watched,
    K::DynamicType: Eq + Hash + Clone,
{
    let name = desired.name_any();
    let (patch, hash) = fingerprinted(desired)?;
    if let Some(live) = cache.get(namespace, &name) {
        match why_apply(live.as_ref(), &patch, &hash)? {
            None => return Ok(live),
            Some(reason) => tracing::debug!(kind = %K::kind(&()), %name, %reason, "applying"),
        }
    }
    force_apply(api, cache, namespace, &name, &patch).await
}

/// Applies a Deployment. When it leaves `spec.replicas` out (an autoscaler owns the count) but
/// the operator still owns that field, the field is first handed to a second field manager, so
/// that dropping it from the applied object does not reset the live count to the default of 1
/// (and scale a serving model down) before the autoscaler acts.
///
/// The handover writes a count, so it is decided on the live Deployment, not the cache (whose
/// count may be an old one): a GET, only while the cache says the operator owns the replicas of
/// a Deployment that an autoscaler should own, that is once per handover.
pub async fn apply_deployment(
    api: &Api<Deployment>,
    cache: &Cache<Deployment>,
    namespace: &str,
    desired: &Deployment,
) -> Result<Arc<Deployment>, Error> {
    let name = desired.name_any();
    let leaves_replicas = desired.spec.as_ref().is_some_and(|s| s.replicas.is_none());
    let cached_owner = cache
        .get(namespace, &name)
        .is_some_and(|live| owns_replicas(&live));
    if leaves_replicas && cached_owner {
        let live = api
            .get_opt(&name)
            .await
            .map_err(Error::kube("get", &name))?;
        if let Some(live) = live.filter(owns_replicas) {
            let replicas = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let handover = json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name},
                "spec": {"replicas": replicas},
            });
            let sending = cache.sending(namespace, &name);
            let handed = api
                .patch(
                    &name,
                    &PatchParams::apply(REPLICAS_HANDOVER_MANAGER).force(),
                    &Patch::Apply(&handover),
                )
                .await
                .map_err(Error::kube("hand over replicas of", &name))?;
            cache.wrote(sending, Some(handed));
            let (patch, _) = fingerprinted(desired)?;
            return force_apply(api, cache, namespace, &name, &patch).await;
        }
    }
    apply(api, cache, namespace, desired).await
}

/// Deletes the child `name` if the cache holds it and this ModelServer controls it (a child of
/// the same name that someone else controls is never deleted). Returns whether it deleted
/// something; one already gone counts as deleted.
pub async fn delete_owned<K>(
    api: &Api<K>,
    cache: &Cache<K>,
    namespace: &str,
    name: &str,
    owner_uid: &str,
) -> Result<bool, Error>
where
    K: Watched,
    K::DynamicType: Eq + Hash + Clone,
{
    let Some(live) = cache.get(namespace, name) else {
        return Ok(false);
    };
    let controlled = live
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid);
    if !controlled {
        return Ok(false);
    }
    // Only the object the cache shows: a newer one of the same name (another uid) stays.
    let params = DeleteParams {
        preconditions: live.uid().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    let sending = cache.sending(namespace, name);
    match api.delete(name, &params).await {
        Ok(_) => {}
        // Deleted since the cache saw it: the watch has not told yet.
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        // Another object of that name (another uid) replaced it: not this ModelServer's to
        // delete; its watch event brings the next decision.
        Err(kube::Error::Api(status)) if status.code == 409 => return Ok(false),
        Err(error) => return Err(Error::kube("delete", name)(error)),
    }
    cache.wrote(sending, None);
    Ok(true)
}

/// Applies `patch` and records the answer in the cache, which the store may not show yet.
async fn force_apply<K>(
    api: &Api<K>,
    cache: &Cache<K>,
    namespace: &str,
    name: &str,
    patch: &Value,
) -> Result<Arc<K>, Error>
where
    K: Watched,
    K::DynamicType: Eq + Hash + Clone,
{
    let sending = cache.sending(namespace, name);
    let applied = api
        .patch(
            name,
            &PatchParams::apply(labels::FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await
        .map_err(Error::kube("apply", name))?;
    cache.wrote(sending, Some(applied.clone()));
    Ok(Arc::new(applied))
}

/// The object as JSON with its fingerprint annotation, and the fingerprint.
fn fingerprinted<K: Serialize>(desired: &K) -> Result<(Value, String), Error> {
    let mut value = serde_json::to_value(desired).map_err(Error::Serialize)?;
    let hash = format!("{:016x}", fnv1a(value.to_string().as_bytes()));
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                APPLIED_HASH_ANNOTATION.to_owned(),
                Value::String(hash.clone()),
            );
        }
    }
    Ok((value, hash))
}

/// Why the live object needs an apply, or `None` when it already matches.
fn why_apply<K: Resource + Serialize>(
    live: &K,
    patch: &Value,
    hash: &str,
) -> Result<Option<String>, Error> {
    let applied = live
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPLIED_HASH_ANNOTATION));
    if applied.map(String::as_str) != Some(hash) {
        return Ok(Some(format!("fingerprint {applied:?} differs from {hash}")));
    }
    let live = serde_json::to_value(live).map_err(Error::Serialize)?;
    Ok(first_difference(patch, &live, ""))
}

/// True when every field of `desired` has the same value in `live` (which may hold more).
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    first_difference(desired, live, "").is_none()
}

/// The path of the first field of `desired` whose value `live` does not have.
///
/// Lists of objects are compared as sets: server-side apply merges such lists by key
/// (containers by name, ports by port), and entries another manager added are theirs to keep,
/// so each desired entry must be found in the live list. Lists of scalars (command, args) are
/// atomic and must be equal.
fn first_difference(desired: &Value, live: &Value, path: &str) -> Option<String> {
    match (desired, live) {
        (Value::Object(desired), Value::Object(live)) => desired.iter().find_map(|(key, value)| {
            let child = format!("{path}.{key}");
            match live.get(key) {
                Some(l) => first_difference(value, l, &child),
                // The API server omits zero values of `omitempty` fields ("", false, 0, [], {}).
                None if is_zero(value) => None,
                None => Some(format!("{child} is missing")),
            }
        }),
        (Value::Array(desired), Value::Array(live)) if desired.iter().all(Value::is_object) => {
            desired
                .iter()
                .enumerate()
                .find(|(_, d)| !live.iter().any(|l| first_difference(d, l, "").is_none()))
                .map(|(index, d)| {
                    // Explain against the live entry of the same name (or position), if any.
                    let same = live
                        .iter()
                        .find(|l| d.get("name").is_some() && l.get("name") == d.get("name"))
                        .or_else(|| live.get(index));
                    let child = format!("{path}[{index}]");
                    same.and_then(|l| first_difference(d, l, &child))
                        .unwrap_or_else(|| format!("{child} is missing"))
                })
        }
        // The API server keeps `{}` for an empty object it was sent; treat null and {} alike.
        (Value::Object(desired), Value::Null) if desired.is_empty() => None,
        (desired, live) if desired == live => None,
        (desired, live) => Some(format!("{path}: {live} instead of {desired}")),
    }
}

/// The zero value of its JSON type, which Kubernetes' `omitempty` fields leave out.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Whether the operator's field manager owns `spec.replicas` of the Deployment.
fn owns_replicas(deployment: &Deployment) -> bool {
    deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(labels::FIELD_MANAGER))
        .filter(|m| m.operation.as_deref() == Some("Apply"))
        .filter_map(|m| m.fields_v1.as_ref())
        .any(|fields| fields.0.pointer(REPLICAS_FIELD).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_allow_extra_live_fields_but_not_changed_or_missing_ones() {
        let desired = json!({"a": 1, "b": {"c": [ {"n": "x", "v": 1} ]}});
        assert!(is_subset(
            &desired,
            &json!({"a": 1, "z": 2, "b": {"c": [ {"n": "x", "v": 1, "d": true} ], "e": 0}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"a": 2, "b": {"c": [ {"n": "x", "v": 1} ]}})
        ));
        assert!(!is_subset(&desired, &json!({"a": 1})));
        assert!(is_subset(
            &json!({"emptyDir": {}}),
            &json!({"emptyDir": {}})
        ));
    }

    #[test]
    fn the_fingerprint_is_64_bit_fnv_1a() {
        // Test vectors of the FNV reference: a different hash would re-apply every child of
        // every ModelServer once after an upgrade of the operator.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
