//! The watch on the ModelServers' pods: which pods (those carrying the operator's managed-by
//! label, which every pod template gets), what the store keeps of them, and which ModelServer
//! each one belongs to. The reconciler reads the pods from the watch's store, never from the API.

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use modelserver_crds::ModelServer;

use crate::labels;

/// The watch's selector: `app.kubernetes.io/managed-by=modelserver-operator`.
pub fn config() -> watcher::Config {
    watcher::Config::default().labels(&labels::managed_by_selector())
}

/// The ModelServer a pod belongs to, in its namespace: the one whose canary it is, else the
/// one named by its instance label. `None` for a pod without either (nothing to reconcile).
pub fn owner(pod: &Pod) -> Option<ObjectRef<ModelServer>> {
    let name = owner_name(pod)?;
    let namespace = pod.namespace()?;
    Some(ObjectRef::new(name).within(&namespace))
}

/// Drops what the status never reads, so the store stays small: managed fields and the
/// containers' environment (a few dozen `MODELSERVER_*` variables per container).
pub fn trim(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    if let Some(spec) = pod.spec.as_mut() {
        let init = spec.init_containers.iter_mut().flatten();
        for container in spec.containers.iter_mut().chain(init) {
            container.env = None;
            container.env_from = None;
        }
    }
}

fn owner_name(pod: &Pod) -> Option<&String> {
    let labels = pod.labels();
    labels
        .get(labels::CANARY_OF)
        .or_else(|| labels.get(labels::INSTANCE))
}

/// True when `pod` is one of the pods of the ModelServer `name` in `namespace`, its canary's
/// included.
pub fn belongs_to(pod: &Pod, namespace: &str, name: &str) -> bool {
    pod.namespace().as_deref() == Some(namespace)
        && owner_name(pod).map(String::as_str) == Some(name)
}

/// True when `pod` runs a canary.
pub fn is_canary(pod: &Pod) -> bool {
    pod.labels().contains_key(labels::CANARY_OF)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(namespace: Option<&str>, instance: Option<&str>) -> Pod {
        let mut pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": "iris-abc",
                "managedFields": [{"manager": "kubelet"}],
            },
            "spec": {
                "initContainers": [{"name": "install-sidecar", "env": [{"name": "A", "value": "1"}]}],
                "containers": [{
                    "name": "model",
                    "image": "iris:1",
                    "env": [{"name": "MODELSERVER_PORT", "value": "8080"}],
                    "envFrom": [{"secretRef": {"name": "s"}}],
                    "resources": {"limits": {"memory": "1Gi"}},
                }],
            },
        }))
        .expect("a pod");
        pod.metadata.namespace = namespace.map(str::to_owned);
        if let Some(instance) = instance {
            pod.labels_mut()
                .insert(labels::INSTANCE.to_owned(), instance.to_owned());
        }
        pod
    }

    #[test]
    fn a_pod_maps_to_the_modelserver_of_its_instance_label_in_its_namespace() {
        let owner = owner(&pod(Some("ml"), Some("iris"))).expect("an owner");
        assert_eq!(owner, ObjectRef::<ModelServer>::new("iris").within("ml"));
        assert_eq!(super::owner(&pod(Some("ml"), None)), None);
        assert_eq!(super::owner(&pod(None, Some("iris"))), None);
    }

    #[test]
    fn belonging_needs_both_the_namespace_and_the_instance() {
        let iris = pod(Some("ml"), Some("iris"));
        assert!(belongs_to(&iris, "ml", "iris"));
        assert!(!belongs_to(&iris, "other", "iris"));
        assert!(!belongs_to(&iris, "ml", "iris2"));
    }

    #[test]
    fn a_canary_pod_belongs_to_the_modelserver_it_is_the_canary_of() {
        // Behind a route a canary pod has no instance label; behind the shared Service it has
        // the stable one's.
        for instance in [None, Some("iris")] {
            let mut canary = pod(Some("ml"), instance);
            canary
                .labels_mut()
                .insert(labels::CANARY_OF.to_owned(), "iris".to_owned());
            assert!(is_canary(&canary));
            assert!(belongs_to(&canary, "ml", "iris"));
            assert_eq!(
                owner(&canary),
                Some(ObjectRef::<ModelServer>::new("iris").within("ml"))
            );
        }
        assert!(!is_canary(&pod(Some("ml"), Some("iris"))));
    }

    #[test]
    fn trimming_keeps_what_the_status_reads() {
        let mut trimmed = pod(Some("ml"), Some("iris"));
        trim(&mut trimmed);
        assert!(trimmed.metadata.managed_fields.is_none_or(|f| f.is_empty()));
        let spec = trimmed.spec.expect("spec");
        let model = &spec.containers[0];
        assert_eq!(model.env, None);
        assert_eq!(model.env_from, None);
        assert_eq!(model.image.as_deref(), Some("iris:1"));
        assert!(
            model.resources.is_some(),
            "the memory limit is reported on OOM"
        );
        assert_eq!(spec.init_containers.expect("init")[0].env, None);
    }

    #[test]
    fn the_watch_selects_the_operators_pods() {
        assert_eq!(
            config().label_selector.as_deref(),
            Some("app.kubernetes.io/managed-by=modelserver-operator")
        );
    }
}
