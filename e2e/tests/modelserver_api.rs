//! The ModelServer API as the real API server enforces it: the CRD from `crds/`, the examples,
//! the CEL rules of `examples/invalid/`, strict field validation and the scale subresource.
//!
//! Layout these tests rely on (they fail, not pass, when it is missing):
//! - `crds/modelserver.dev_modelservers.yaml`: the CRD;
//! - `examples/<name>/modelserver.yaml`: valid examples (other documents in the file, such as a
//!   Secret, are applied first);
//! - `examples/invalid/*.yaml`: one invalid ModelServer per CEL rule (or per strict-validation
//!   case), each with a comment line `# expect: <message>` that the API server's rejection must
//!   contain. They are created as `kubectl apply` creates a new object: a POST with
//!   `fieldValidation=Strict`.
//!
//! They need the cluster of `e2e/cluster.sh`; `make e2e` runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::Api;
use modelserver_e2e::gitops_health::gitops_health;
use modelserver_e2e::{
    CRD_NAME, Kubectl, TestNamespace, api_error_message, apply_manifest, client, create_manifest,
    install_crds, modelservers, read_yaml_documents, repo_root, wait_until,
};
use serde_json::Value;

async fn setup() -> anyhow::Result<(Client, Kubectl)> {
    let client = client().await?;
    let kubectl = Kubectl::new().await?;
    install_crds(&client, &kubectl).await?;
    Ok((client, kubectl))
}

/// `examples/<name>/modelserver.yaml`, sorted; fails when there are none.
fn valid_examples() -> Vec<PathBuf> {
    let dir = repo_root().join("examples");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n != "invalid"))
        .map(|p| p.join("modelserver.yaml"))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no examples/*/modelserver.yaml found in {}",
        dir.display()
    );
    files
}

/// `examples/invalid/*.yaml`, sorted; fails when there are none.
fn invalid_examples() -> Vec<PathBuf> {
    let dir = repo_root().join("examples/invalid");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {}", dir.display());
    files
}

/// The `# expect: <message>` lines of a file (surrounding quotes removed).
fn expected_messages(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .filter_map(|l| l.trim_start().strip_prefix("expect:"))
        .map(|m| {
            let m = m.trim();
            m.strip_prefix('"')
                .and_then(|m| m.strip_suffix('"'))
                .unwrap_or(m)
                .to_owned()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

fn is_modelserver(doc: &Value) -> bool {
    doc["kind"] == "ModelServer"
}

/// The documents of an example, its ModelServer last-but-in-order; fails without a ModelServer.
fn example_documents(path: &Path) -> Vec<Value> {
    let docs = read_yaml_documents(path).unwrap();
    assert!(
        docs.iter().any(is_modelserver),
        "{} holds no ModelServer",
        path.display()
    );
    docs
}

fn rel(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[tokio::test]
#[ignore = "needs the local control plane: run `make e2e`"]
async fn crd_applies_and_becomes_established() -> anyhow::Result<()> {
    let (client, _) = setup().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let crd = crds.get(CRD_NAME).await?;
    let names = &crd.spec.names;
    assert_eq!(names.kind, "ModelServer");
    assert_eq!(names.plural, "modelservers");
    assert!(
        names
            .short_names
            .as_ref()
            .is_some_and(|s| s.iter().any(|n| n == "ms")),
        "short name ms missing: {names:?}"
    );
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == "v1alpha1")
        .expect("version v1alpha1 is served");
    let subresources = version.subresources.clone().unwrap_or_default();
    assert!(subresources.status.is_some(), "no status subresource");
    let scale = subresources.scale.expect("no scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane: run `make e2e`"]
async fn every_example_modelserver_is_accepted() -> anyhow::Result<()> {
    let (client, _) = setup().await?;
    let ns = TestNamespace::create(&client, "examples").await?;
    let mut failures = Vec::new();
    for file in valid_examples() {
        for doc in example_documents(&file) {
            match apply_manifest(&client, ns.name(), &doc).await {
                Ok(stored) if is_modelserver(&doc) => {
                    let name = stored.metadata.name.unwrap_or_default();
                    // Read it back through the typed ModelServer endpoint.
                    if let Err(e) = modelservers(&client, ns.name()).get(&name).await {
                        failures.push(format!("{}: applied but not readable: {e}", rel(&file)));
                    }
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{}: rejected: {e}", rel(&file))),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    ns.delete().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane: run `make e2e`"]
async fn every_invalid_example_is_rejected_with_its_rules_message() -> anyhow::Result<()> {
    let (client, _) = setup().await?;
    let ns = TestNamespace::create(&client, "invalid").await?;
    let mut failures = Vec::new();
    for file in invalid_examples() {
        let expected = expected_messages(&file);
        if expected.is_empty() {
            failures.push(format!("{}: no `# expect: <message>` line", rel(&file)));
            continue;
        }
        let mut rejection = None;
        for doc in read_yaml_documents(&file)? {
            match create_manifest(&client, ns.name(), &doc).await {
                Ok(created) => {
                    // Wrongly accepted (or a helper object such as a Secret): remove it so the
                    // next file, which may reuse the name, is judged on its own.
                    if let (true, Some(name)) = (is_modelserver(&doc), created.metadata.name) {
                        modelservers(&client, ns.name())
                            .delete(&name, &Default::default())
                            .await?;
                    }
                }
                Err(e) => {
                    rejection = Some(e);
                    break;
                }
            }
        }
        match rejection {
            None => failures.push(format!("{}: accepted, want: {expected:?}", rel(&file))),
            Some(err) => {
                let message =
                    api_error_message(&err).map_or_else(|| err.to_string(), str::to_owned);
                for want in &expected {
                    if !message.contains(want.as_str()) {
                        failures.push(format!(
                            "{}: rejected with {message:?}, which lacks {want:?}",
                            rel(&file)
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    ns.delete().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane: run `make e2e`"]
async fn a_modelserver_no_operator_has_seen_is_in_progress_for_flux_and_argocd()
-> anyhow::Result<()> {
    // No operator runs here: the object is as `kubectl apply` leaves it. Its status reads back
    // as {observedGeneration: 0} (the CRD's only defaults), so kstatus does not call it Current.
    let (client, _) = setup().await?;
    let ns = TestNamespace::create(&client, "fresh").await?;
    let file = repo_root().join("examples/iris/modelserver.yaml");
    let doc = example_documents(&file)
        .into_iter()
        .find(is_modelserver)
        .expect("the iris ModelServer");
    let stored = apply_manifest(&client, ns.name(), &doc).await?;
    let name = stored.metadata.name.unwrap_or_default();
    let live = serde_json::to_value(modelservers(&client, ns.name()).get(&name).await?)?;
    assert_eq!(
        live["status"],
        serde_json::json!({"observedGeneration": 0}),
        "{live}"
    );
    assert_eq!(live["spec"], doc["spec"], "the spec is stored as applied");
    let verdicts = gitops_health(&live).await?;
    assert_eq!(
        (
            verdicts.kstatus.status.as_str(),
            verdicts.argocd.status.as_str()
        ),
        ("InProgress", "Progressing"),
        "{verdicts:?}"
    );
    ns.delete().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane: run `make e2e`"]
async fn unknown_field_is_rejected_with_strict_field_validation() -> anyhow::Result<()> {
    let (client, kubectl) = setup().await?;
    let ns = TestNamespace::create(&client, "strict").await?;
    let file = valid_examples().remove(0);
    let mut modelserver = example_documents(&file)
        .into_iter()
        .find(is_modelserver)
        .unwrap();
    modelserver["metadata"]["namespace"] = Value::from(ns.name());
    modelserver["spec"]["e2eUnknownField"] = Value::from("surprise");

    // Server-side apply with fieldValidation=Strict.
    let err = apply_manifest(&client, ns.name(), &modelserver)
        .await
        .expect_err("an unknown field must be rejected");
    let message = api_error_message(&err).map_or_else(|| err.to_string(), str::to_owned);
    assert!(
        message.contains("e2eUnknownField"),
        "the rejection does not name the field: {message}"
    );

    // What a user sees: kubectl validates strictly by default.
    let out = kubectl
        .run(
            &["create", "--validate=strict", "-f", "-"],
            Some(&modelserver.to_string()),
        )
        .await?;
    assert!(!out.success, "kubectl create accepted it: {}", out.stdout);
    assert!(
        out.stderr.contains("unknown field") && out.stderr.contains("e2eUnknownField"),
        "kubectl's error does not name the unknown field: {}",
        out.stderr
    );
    ns.delete().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local control plane: run `make e2e`"]
async fn kubectl_scale_changes_spec_replicas_through_the_scale_subresource() -> anyhow::Result<()> {
    let (client, kubectl) = setup().await?;
    let ns = TestNamespace::create(&client, "scale").await?;
    // An example that does not already ask for 3 replicas.
    let (file, docs) = valid_examples()
        .into_iter()
        .map(|f| {
            let docs = example_documents(&f);
            (f, docs)
        })
        .find(|(_, docs)| {
            docs.iter()
                .filter(|d| is_modelserver(d))
                .all(|d| d["spec"]["replicas"] != 3)
        })
        .expect("an example whose spec.replicas is not 3");
    let mut name = String::new();
    for doc in &docs {
        let stored = apply_manifest(&client, ns.name(), doc).await?;
        if is_modelserver(doc) {
            name = stored.metadata.name.unwrap_or_default();
        }
    }
    let api = modelservers(&client, ns.name());
    let target = format!("ms/{name}");

    // Discovery of a just-established CRD can lag by a moment: retry until kubectl knows "ms".
    wait_until(
        &format!("kubectl scale {target} --replicas 3 ({})", file.display()),
        Duration::from_secs(30),
        || async {
            let out = kubectl
                .run(
                    &[
                        "scale",
                        &target,
                        "--replicas",
                        "3",
                        "--namespace",
                        ns.name(),
                    ],
                    None,
                )
                .await
                .map_err(|e| e.to_string())?;
            if out.success {
                Ok(Some(()))
            } else {
                Err(out.stderr)
            }
        },
    )
    .await?;

    let stored = api.get(&name).await?;
    assert_eq!(
        stored.data["spec"]["replicas"], 3,
        "spec: {}",
        stored.data["spec"]
    );
    // kubectl scale PATCHes .../modelservers/<name>/scale; read it back through /scale too.
    let scale = api.get_scale(&name).await?;
    assert_eq!(
        scale.spec.and_then(|s| s.replicas),
        Some(3),
        "the /scale subresource"
    );
    ns.delete().await?;
    Ok(())
}
