//! Metadata shared by every child: name, namespace, labels and the controller ownerReference.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Resource;
use modelserver_crds::ModelServer;

use crate::labels;

/// The labels that select the pods of one ModelServer (stable for the Deployment's life).
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::INSTANCE.to_owned(), name.to_owned()),
    ])
}

/// The selector as `status.selector` shows it (`key=value,...`, sorted by key).
pub fn selector_string(name: &str) -> String {
    selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The label selector of the pods.
pub fn label_selector(name: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(name)),
        match_expressions: None,
    }
}

/// Every label the operator puts on its children and their pods.
pub fn common_labels(name: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(name);
    labels.insert(
        labels::MANAGED_BY.to_owned(),
        labels::OPERATOR_NAME.to_owned(),
    );
    labels.insert(labels::PART_OF.to_owned(), labels::APP_NAME.to_owned());
    labels
}

/// Metadata of a child: the ModelServer's name and namespace, the common labels, and a
/// controller ownerReference when the ModelServer has a uid (it has none when rendered from a
/// file, where there is no owner yet).
pub fn child_meta(owner: &ModelServer, name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(common_labels(name)),
        owner_references: owner_reference(owner).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

fn owner_reference(owner: &ModelServer) -> Option<OwnerReference> {
    let mut reference = owner.controller_owner_ref(&())?;
    reference.block_owner_deletion = Some(true);
    Some(reference)
}
