//! The operator survives its API server going away: the API server is stopped for 10 s while
//! the operator runs, then started again, and the operator converges on a change made after it
//! came back, without being restarted. A test binary of its own, because stopping the API server
//! would disturb any test running beside it (cargo runs test binaries one after another).
//!
//! Needs the cluster of `e2e/cluster.sh`; `make e2e` runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared with the operator tests; this binary uses only part of it.
#[allow(dead_code)]
#[path = "operator/harness.rs"]
mod harness;

use std::time::Duration;

use anyhow::Result;
use harness::{Operator, operator_identity};
use kube::api::{Api, Patch, PatchParams};
use modelserver_crds::ModelServer;
use modelserver_e2e::{
    Kubectl, TestNamespace, client, cluster_script, install_crds, repo_root, wait_until,
};
use serde_json::{Value, json};

/// How long the API server stays down: the outage the operator must ride out.
const OUTAGE: Duration = Duration::from_secs(10);

async fn apply_iris(api: &Api<ModelServer>, namespace: &str, workers: i64) -> Result<()> {
    let text = std::fs::read_to_string(repo_root().join("examples/iris/modelserver.yaml"))?;
    let mut manifest: Value = serde_saphyr::from_str(&text)?;
    manifest["metadata"]["namespace"] = json!(namespace);
    manifest["spec"]["server"]["workers"] = json!(workers);
    api.patch(
        "iris",
        &PatchParams::apply("e2e-user").force(),
        &Patch::Apply(&manifest),
    )
    .await?;
    Ok(())
}

async fn wait_ready(api: &Api<ModelServer>, timeout: Duration) -> Result<ModelServer> {
    Ok(
        wait_until("iris Ready for its current generation", timeout, || {
            let api = api.clone();
            async move {
                let object = api.get("iris").await.map_err(|e| e.to_string())?;
                let status = object.status.clone().unwrap_or_default();
                let ready = status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready && status.observed_generation == object.metadata.generation {
                    Ok(Some(object))
                } else {
                    Err(format!("{:?}", status.conditions))
                }
            }
        })
        .await?,
    )
}

#[tokio::test]
#[ignore = "needs the local control plane: make e2e"]
async fn the_operator_converges_after_the_api_server_was_down_for_10_seconds() -> Result<()> {
    let client = client().await?;
    let kubectl = Kubectl::new().await?;
    install_crds(&client, &kubectl).await?;
    let namespace = TestNamespace::create(&client, "op-outage").await?;
    let dir = tempfile::tempdir()?;
    let identity = operator_identity(&client, &kubectl, dir.path()).await?;
    let operator =
        Operator::start(&identity, namespace.name(), dir.path(), "operator", &[]).await?;
    let api: Api<ModelServer> = Api::namespaced(client.clone(), namespace.name());
    apply_iris(&api, namespace.name(), 2).await?;
    wait_ready(&api, Duration::from_secs(120)).await?;

    cluster_script("stop-apiserver").await?;
    tokio::time::sleep(OUTAGE).await;
    let healthz = reqwest::get(format!("http://{}/healthz", operator.metrics_addr)).await?;
    assert!(
        healthz.status().is_success(),
        "the operator stays alive while its API server is down"
    );
    cluster_script("start-apiserver").await?;

    // A fresh client: the admin's connection pool may hold dead connections.
    let client = modelserver_e2e::client().await?;
    let api: Api<ModelServer> = Api::namespaced(client, namespace.name());
    wait_until(
        "the API server answers again",
        Duration::from_secs(60),
        || {
            let api = api.clone();
            async move { api.get("iris").await.map(Some).map_err(|e| e.to_string()) }
        },
    )
    .await?;
    apply_iris(&api, namespace.name(), 3).await?;
    let ready = wait_ready(&api, Duration::from_secs(300))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", operator.log_tail()))?;
    assert!(ready.metadata.generation >= Some(2));
    let reconciles = operator
        .total("modelserver_operator_reconcile_total")
        .await?;
    assert!(reconciles > 0.0);
    namespace.delete().await?;
    Ok(())
}
