//! How the GitOps tools judge a live object, with their own code: `e2e/health` (Go) runs Flux's
//! kstatus library (`sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute`) and Argo CD's Lua health
//! check (`docs/argocd/health.lua`) under gopher-lua, the interpreter Argo CD embeds. `make e2e`
//! builds it (`e2e/health/build.sh`) and names it in `MODELSERVER_E2E_HEALTH`.

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::{Error, Result, repo_root};

/// The variable naming the health binary.
pub const HEALTH_BINARY_VAR: &str = "MODELSERVER_E2E_HEALTH";
/// The Argo CD health check, relative to the repository root.
pub const ARGOCD_HEALTH_LUA: &str = "docs/argocd/health.lua";

/// One tool's verdict.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Verdict {
    /// kstatus: `Current`, `InProgress`, `Failed`, ...; Argo CD: `Healthy`, `Progressing`,
    /// `Degraded`, ...
    pub status: String,
    /// The tool's message.
    pub message: String,
}

/// Both tools' verdicts on one object.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct GitOpsHealth {
    /// Flux's kstatus.
    pub kstatus: Verdict,
    /// Argo CD's health check.
    pub argocd: Verdict,
}

/// The verdicts on `object` (as the API server returns it).
pub async fn gitops_health(object: &serde_json::Value) -> Result<GitOpsHealth> {
    let tool = |detail: String| Error::Manifest(format!("e2e/health: {detail}"));
    let binary = std::env::var(HEALTH_BINARY_VAR).map_err(|_| {
        tool(format!(
            "{HEALTH_BINARY_VAR} is not set: run the suite with `make e2e` (it builds e2e/health)"
        ))
    })?;
    let script = repo_root().join(ARGOCD_HEALTH_LUA);
    let mut child = Command::new(&binary)
        .arg("--lua")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| tool(format!("cannot run {binary}: {e}")))?;
    let input = serde_json::to_vec(object).map_err(|e| tool(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&input)
            .await
            .map_err(|e| tool(format!("writing the object: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| tool(e.to_string()))?;
    if !out.status.success() {
        return Err(tool(String::from_utf8_lossy(&out.stderr).into_owned()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        tool(format!(
            "unreadable verdict {:?}: {e}",
            String::from_utf8_lossy(&out.stdout)
        ))
    })
}

/// What both tools must say of a ModelServer whose conditions are these: Stalled=True is
/// Failed/Degraded, Reconciling=True is InProgress/Progressing (also while the stable version is
/// Ready and a canary or a route is on its way), Ready=True is Current/Healthy, anything else is
/// InProgress/Progressing.
pub fn expected_for(stalled: bool, reconciling: bool, ready: bool) -> (&'static str, &'static str) {
    if stalled {
        ("Failed", "Degraded")
    } else if reconciling {
        ("InProgress", "Progressing")
    } else if ready {
        ("Current", "Healthy")
    } else {
        ("InProgress", "Progressing")
    }
}
