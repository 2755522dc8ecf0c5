//! A small in-process API server for reconcile tests: it stores objects by path, answers GET,
//! server-side apply PATCH (with field ownership, so dropping a field from an apply removes it
//! unless another field manager owns it), merge PATCH, POST and DELETE like kube-apiserver does
//! for the objects the operator touches, and records every request it is sent. The kube client
//! is built on it with `Client::new`, with the operator's request-counting layer in between.
//!
//! It serves no list or watch: the scenarios play the watches' part themselves, delivering what
//! changed here to the operator's caches ([`FakeApi::list`]) when a real watch would have, so a
//! scenario decides exactly how stale a cache is. Every change of an object, by the operator or by
//! the scenario, gives it a new `resourceVersion`, as the API server does.
//!
//! Simplifications, none of which the operator depends on: lists of an applied object are
//! atomic (owned and replaced as a whole); a forced apply takes over only the fields whose value
//! it changes; there is no admission or validation, and delete preconditions are not checked;
//! the only default applied is a Deployment's `spec.replicas` of 1.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use http::{Method, Request, Response, StatusCode, header};
use kube::Client;
use kube::client::Body;
use modelserver_operator::api_requests::CountRequestsLayer;
use modelserver_operator::metrics::Metrics;
use serde_json::{Map, Value, json};
use tower::ServiceBuilder;

/// One request as the fake API server received it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The HTTP method.
    pub method: Method,
    /// The path.
    pub path: String,
    /// The query string, empty when none.
    pub query: String,
    /// The body as JSON, when there was one.
    pub body: Option<Value>,
}

impl fmt::Display for Sent {
    /// `METHOD /path?query`, the form the scenarios compare (the query's parameters in the
    /// order sent, without the empty one kube's query builder starts with).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        let query: Vec<&str> = self.query.split('&').filter(|p| !p.is_empty()).collect();
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    sent: Vec<Sent>,
    next_uid: u64,
    resource_version: u64,
}

/// The fake API server; clones share their state.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// A client whose requests reach this fake through the operator's counting layer.
    pub fn client(&self, metrics: &Metrics, namespace: &str) -> Client {
        let state = self.state.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let state = state.clone();
            async move {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let body = serde_json::from_slice::<Value>(&bytes).ok();
                let content_type = parts
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let sent = Sent {
                    method: parts.method.clone(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().unwrap_or_default().to_owned(),
                    body,
                };
                let (status, answer) = lock(&state).answer(&sent, &content_type);
                lock(&state).sent.push(sent);
                let response = Response::builder()
                    .status(status)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(answer.to_string().into_bytes()))
                    .expect("a response");
                Ok::<_, Infallible>(response)
            }
        });
        let service = ServiceBuilder::new()
            .layer(CountRequestsLayer::new(metrics.clone()))
            .service(service);
        Client::new(service, namespace)
    }

    /// Stores `object` at `path` as another client would have created it.
    pub fn insert(&self, path: &str, mut object: Value) {
        let mut state = lock(&self.state);
        state.stamp_new(&mut object);
        state.objects.insert(path.to_owned(), object);
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        lock(&self.state).objects.get(path).cloned()
    }

    /// Changes the object at `path` as another client would (a user's edit, another
    /// controller's status); not recorded as a request of the operator's.
    pub fn update(&self, path: &str, change: impl FnOnce(&mut Value)) {
        let mut state = lock(&self.state);
        let Some(object) = state.objects.get_mut(path) else {
            panic!("no object at {path}");
        };
        let spec_before = object.get("spec").cloned();
        change(object);
        if object.get("spec").cloned() != spec_before {
            bump_generation(object);
        }
        state.resource_version += 1;
        let version = state.resource_version.to_string();
        if let Some(object) = state.objects.get_mut(path) {
            object["metadata"]["resourceVersion"] = version.into();
        }
    }

    /// Deletes the object at `path` as another client would; not recorded.
    pub fn remove(&self, path: &str) {
        lock(&self.state).objects.remove(path);
    }

    /// The objects whose path starts with `prefix` (`.../namespaces/ml/deployments/`), as a
    /// watch of that kind would see them.
    pub fn list(&self, prefix: &str) -> Vec<Value> {
        lock(&self.state)
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(path, _)| path.starts_with(prefix))
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// The requests received since the last call, oldest first.
    pub fn take_sent(&self) -> Vec<Sent> {
        std::mem::take(&mut lock(&self.state).sent)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn answer(&mut self, sent: &Sent, content_type: &str) -> (StatusCode, Value) {
        let query = query_pairs(&sent.query);
        let (path, subresource) = match sent.path.strip_suffix("/status") {
            Some(path) => (path.to_owned(), Some("status")),
            None => (sent.path.clone(), None),
        };
        match (&sent.method, &sent.body) {
            (&Method::GET, _) => match self.objects.get(&path) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => not_found(&path),
            },
            (&Method::PATCH, Some(patch)) if content_type.starts_with("application/apply") => {
                let manager = query.get("fieldManager").cloned().unwrap_or_default();
                match subresource {
                    Some(_) => self.apply_status(&path, patch),
                    None => self.apply(&path, &manager, patch),
                }
            }
            (&Method::PATCH, Some(patch)) => {
                self.resource_version += 1;
                let version = self.resource_version.to_string();
                match self.objects.get_mut(&path) {
                    Some(object) => {
                        merge_patch(object, patch);
                        object["metadata"]["resourceVersion"] = version.into();
                        (StatusCode::OK, object.clone())
                    }
                    None => not_found(&path),
                }
            }
            (&Method::POST, Some(object)) => {
                let name = object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let path = format!("{path}/{name}");
                if self.objects.contains_key(&path) {
                    return status(StatusCode::CONFLICT, "AlreadyExists", &path);
                }
                let mut object = object.clone();
                self.stamp_new(&mut object);
                self.objects.insert(path, object.clone());
                (StatusCode::CREATED, object)
            }
            (&Method::DELETE, _) => match self.objects.remove(&path) {
                Some(_) => status(StatusCode::OK, "", &path),
                None => not_found(&path),
            },
            _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", &path),
        }
    }

    /// Server-side apply of `patch` by `manager` (always forced, as the operator sends it).
    fn apply(&mut self, path: &str, manager: &str, patch: &Value) -> (StatusCode, Value) {
        let fields = field_set(patch);
        let entry = json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": patch.get("apiVersion").cloned().unwrap_or(Value::Null),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        });
        let Some(mut object) = self.objects.get(path).cloned() else {
            let mut object = patch.clone();
            self.stamp_new(&mut object);
            object["metadata"]["managedFields"] = json!([entry]);
            apply_defaults(path, &mut object);
            self.objects.insert(path.to_owned(), object.clone());
            return (StatusCode::CREATED, object);
        };
        let spec_before = object.get("spec").cloned();
        let mut entries: Vec<Value> = object
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mine = |e: &Value| e["manager"] == manager && e["operation"] == "Apply";
        let owned_before = entries
            .iter()
            .find(|e| mine(e))
            .map(|e| leaves(&e["fieldsV1"]))
            .unwrap_or_default();
        // Forced: fields whose value this apply changes are taken from their other managers.
        let changed: Vec<Vec<String>> = leaves(&fields)
            .into_iter()
            .filter(|leaf| lookup(&object, leaf) != lookup(patch, leaf))
            .collect();
        for entry in entries.iter_mut().filter(|e| !mine(e)) {
            for leaf in &changed {
                remove_leaf(&mut entry["fieldsV1"], &fields_path(leaf));
            }
        }
        // A field this manager stopped applying goes, unless another manager owns it.
        let owned_by_others: Vec<Vec<String>> = entries
            .iter()
            .filter(|e| !mine(e))
            .flat_map(|e| leaves(&e["fieldsV1"]))
            .collect();
        let now_owned = leaves(&fields);
        for leaf in owned_before {
            if !now_owned.contains(&leaf) && !owned_by_others.contains(&leaf) {
                remove_leaf(&mut object, &leaf);
            }
        }
        deep_merge(&mut object, patch);
        entries.retain(|e| !mine(e));
        entries.push(entry);
        object["metadata"]["managedFields"] = Value::Array(entries);
        apply_defaults(path, &mut object);
        if object.get("spec").cloned() != spec_before {
            bump_generation(&mut object);
        }
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = self.resource_version.to_string().into();
        self.objects.insert(path.to_owned(), object.clone());
        (StatusCode::OK, object)
    }

    /// Server-side apply on the status subresource: the status is replaced by the applied one
    /// (the operator applies all of it, always).
    fn apply_status(&mut self, path: &str, patch: &Value) -> (StatusCode, Value) {
        self.resource_version += 1;
        let version = self.resource_version.to_string();
        match self.objects.get_mut(path) {
            Some(object) => {
                object["status"] = patch.get("status").cloned().unwrap_or(Value::Null);
                object["metadata"]["resourceVersion"] = version.into();
                (StatusCode::OK, object.clone())
            }
            None => not_found(path),
        }
    }

    /// Gives a new object what the API server gives it: a uid, a generation and a version.
    fn stamp_new(&mut self, object: &mut Value) {
        self.next_uid += 1;
        self.resource_version += 1;
        let metadata = &mut object["metadata"];
        if metadata.get("uid").is_none() {
            metadata["uid"] = format!("uid-{}", self.next_uid).into();
        }
        if metadata.get("generation").is_none() {
            metadata["generation"] = 1.into();
        }
        metadata["resourceVersion"] = self.resource_version.to_string().into();
    }
}

fn bump_generation(object: &mut Value) {
    let generation = object
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    object["metadata"]["generation"] = (generation + 1).into();
}

/// The API server's default of a Deployment's `spec.replicas`.
fn apply_defaults(path: &str, object: &mut Value) {
    if path.contains("/deployments/")
        && let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.entry("replicas").or_insert(1.into());
    }
}

fn not_found(path: &str) -> (StatusCode, Value) {
    status(StatusCode::NOT_FOUND, "NotFound", path)
}

/// A `Status` answer, as the API server writes it.
fn status(code: StatusCode, reason: &str, path: &str) -> (StatusCode, Value) {
    let success = code.is_success();
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": if success { "Success" } else { "Failure" },
        "reason": reason,
        "message": format!("{reason} {path}"),
        "code": code.as_u16(),
    });
    (code, body)
}

fn query_pairs(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The fields an applied object sets, in the API server's FieldsV1 form (`{"f:spec":
/// {"f:replicas": {}}}`); a list or a scalar is a leaf.
fn field_set(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (format!("f:{k}"), field_set(v)))
                .collect::<Map<_, _>>(),
        ),
        _ => json!({}),
    }
}

/// The leaf paths of a field set, as plain keys.
fn leaves(fields: &Value) -> Vec<Vec<String>> {
    let Some(map) = fields.as_object() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, child) in map {
        let key = key.strip_prefix("f:").unwrap_or(key).to_owned();
        let below = leaves(child);
        if below.is_empty() {
            out.push(vec![key.clone()]);
        }
        for mut leaf in below {
            leaf.insert(0, key.clone());
            out.push(leaf);
        }
    }
    out
}

fn fields_path(leaf: &[String]) -> Vec<String> {
    leaf.iter().map(|k| format!("f:{k}")).collect()
}

fn lookup<'a>(value: &'a Value, leaf: &[String]) -> Option<&'a Value> {
    leaf.iter().try_fold(value, |v, key| v.get(key))
}

fn remove_leaf(value: &mut Value, leaf: &[String]) {
    let Some((last, parents)) = leaf.split_last() else {
        return;
    };
    let parent = parents.iter().try_fold(value, |v, key| v.get_mut(key));
    if let Some(Value::Object(map)) = parent {
        map.remove(last);
    }
}

/// Objects merge key by key; anything else is replaced.
fn deep_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                deep_merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_dropped_from_an_apply_goes_unless_another_manager_owns_it() {
        let mut state = State::default();
        let path = "/apis/apps/v1/namespaces/ml/deployments/d";
        let with = json!({"metadata": {"name": "d"}, "spec": {"replicas": 3, "paused": false}});
        let without = json!({"metadata": {"name": "d"}, "spec": {"paused": false}});
        state.apply(path, "a", &with);
        let (_, object) = state.apply(path, "a", &without);
        assert_eq!(object["spec"]["replicas"], 1, "removed, then defaulted");

        state.apply(path, "a", &with);
        state.apply(
            path,
            "b",
            &json!({"metadata": {"name": "d"}, "spec": {"replicas": 3}}),
        );
        let (_, object) = state.apply(path, "a", &without);
        assert_eq!(object["spec"]["replicas"], 3, "b still owns it");
        assert_eq!(object["metadata"]["generation"], 3);
    }
}
