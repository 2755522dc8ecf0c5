//! The local control plane itself: controllers, scheduler, kwok nodes and garbage collection.
//!
//! These tests need the cluster of `e2e/cluster.sh`; `make e2e` runs them (they are `#[ignore]`d
//! so that `cargo test --workspace`, which has no cluster, skips them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use modelserver_e2e::{TestNamespace, client, client_with_token, wait_until};
use serde_json::json;

#[tokio::test]
#[ignore = "needs the local control plane: run `make e2e`"]
async fn kwok_nodes_are_ready() -> anyhow::Result<()> {
    let client = client().await?;
    let nodes: Api<Node> = Api::all(client);
    let list = nodes.list(&ListParams::default()).await?;
    let ready: Vec<String> = list
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert!(
        ready.len() >= 2,
        "want at least 2 Ready kwok nodes, got {ready:?}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane: run `make e2e`"]
async fn deployment_becomes_ready_on_kwok_nodes_and_is_garbage_collected() -> anyhow::Result<()> {
    let client = client().await?;
    let ns = TestNamespace::create(&client, "deploy").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), ns.name());
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let by_app = ListParams::default().labels("app=web");

    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    // Never pulled: kwok only simulates the kubelet.
                    "containers": [{"name": "web", "image": "registry.invalid/e2e/web:1"}]
                }
            }
        }
    }))?;
    let created = deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let deployment_uid = created
        .metadata
        .uid
        .clone()
        .expect("a created object has a uid");

    wait_until(
        "deployment web to have 2 ready replicas",
        Duration::from_secs(120),
        || async {
            let d = deployments.get("web").await.map_err(|e| e.to_string())?;
            let status = d.status.unwrap_or_default();
            match status.ready_replicas {
                Some(2) => Ok(Some(())),
                _ => Err(format!("status: {status:?}")),
            }
        },
    )
    .await?;

    let running = pods.list(&by_app).await?;
    assert_eq!(running.items.len(), 2, "pods: {:?}", running.items);
    for pod in &running.items {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or_default();
        assert!(
            node.starts_with("kwok-node-"),
            "pod {name} is on {node:?}, not a kwok node"
        );
        let status = pod.status.clone().unwrap_or_default();
        assert_eq!(status.phase.as_deref(), Some("Running"), "pod {name}");
        let ready = status
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        assert!(ready, "pod {name} is not Ready");
    }

    let owned = replicasets.list(&by_app).await?;
    assert_eq!(owned.items.len(), 1, "replicasets: {:?}", owned.items);
    let owner = owned.items[0]
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    assert!(
        owner.iter().any(|o| o.kind == "Deployment"
            && o.uid == deployment_uid
            && o.controller == Some(true)),
        "the ReplicaSet is not controlled by the Deployment: {owner:?}"
    );

    deployments
        .delete("web", &DeleteParams::background())
        .await?;
    wait_until(
        "the garbage collector to delete the ReplicaSet and Pods of deployment web",
        Duration::from_secs(120),
        || async {
            let rs = replicasets.list(&by_app).await.map_err(|e| e.to_string())?;
            let ps = pods.list(&by_app).await.map_err(|e| e.to_string())?;
            if rs.items.is_empty() && ps.items.is_empty() {
                Ok(Some(()))
            } else {
                Err(format!(
                    "{} replicasets and {} pods remain",
                    rs.items.len(),
                    ps.items.len()
                ))
            }
        },
    )
    .await?;

    ns.delete().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane: run `make e2e`"]
async fn service_account_token_authenticates_and_rbac_authorizes() -> anyhow::Result<()> {
    let admin = client().await?;
    let ns = TestNamespace::create(&admin, "token").await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns.name());
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "reader"}}))?,
        )
        .await?;

    // The TokenRequest API (what `kubectl create token` and projected volumes use).
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": [], "expirationSeconds": 600}
    }))?;
    let issued: TokenRequest = accounts
        .create_subresource("token", "reader", &PostParams::default(), &request)
        .await?;
    let token = issued.status.expect("a TokenRequest status").token;
    let reader = client_with_token(&token).await?;
    let pods: Api<Pod> = Api::namespaced(reader, ns.name());

    // Authenticated as the ServiceAccount, but RBAC grants it nothing yet.
    let denied = pods.list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(status) = &denied else {
        panic!("want a 403 from the API server, got {denied}");
    };
    assert_eq!(status.code, 403, "{status:?}");
    let user = format!("system:serviceaccount:{}:reader", ns.name());
    assert!(status.message.contains(&user), "{}", status.message);

    let roles: Api<Role> = Api::namespaced(admin.clone(), ns.name());
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
            }))?,
        )
        .await?;
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), ns.name());
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "reader-reads-pods"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns.name()}]
            }))?,
        )
        .await?;
    wait_until(
        "the RoleBinding to let the ServiceAccount list pods",
        Duration::from_secs(30),
        || async {
            match pods.list(&ListParams::default()).await {
                Ok(_) => Ok(Some(())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    ns.delete().await?;
    Ok(())
}
