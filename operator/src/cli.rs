//! Command-line interface of `modelserver-operator`.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use modelserver_crds::load;
use serde_json::Value;

use crate::error::CliError;
use crate::render::{self, RenderConfig};

/// The ModelServer operator.
#[derive(Debug, Parser)]
#[command(name = "modelserver-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the objects a ModelServer file becomes, as multi-document YAML, without a cluster
    /// (for CI diffs and GitOps previews). An invalid file exits non-zero with the message the
    /// API server would give.
    Render(RenderArgs),
}

/// Flags of `render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The ModelServer manifest (YAML; documents of other kinds are skipped). `-` reads stdin.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Image holding the sidecar binary.
    #[arg(long, env = "MODELSERVER_SIDECAR_IMAGE", default_value = render::DEFAULT_SIDECAR_IMAGE)]
    pub sidecar_image: String,
    /// Namespace for a ModelServer without metadata.namespace.
    #[arg(long, default_value = render::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Cluster DNS domain.
    #[arg(long, default_value = render::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
}

/// Renders every ModelServer document of `args.file` to `out`.
pub fn run_render(args: &RenderArgs, out: &mut impl Write) -> Result<(), CliError> {
    let path = args.file.display().to_string();
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|source| CliError::Read {
            path: path.clone(),
            source,
        })?
    } else {
        std::fs::read_to_string(&args.file).map_err(|source| CliError::Read {
            path: path.clone(),
            source,
        })?
    };
    let config = RenderConfig {
        sidecar_image: args.sidecar_image.clone(),
        cluster_domain: args.cluster_domain.clone(),
        default_namespace: args.namespace.clone(),
        ..RenderConfig::default()
    };
    let load_error = |source| CliError::Load {
        path: path.clone(),
        source,
    };
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| load_error(load::LoadError::Yaml(Box::new(e))))?;
    let mut rendered = 0;
    for document in documents {
        if document.is_null() {
            continue;
        }
        if document.get("kind").and_then(Value::as_str) != Some(modelserver_crds::KIND) {
            continue;
        }
        let object = load::from_value(document).map_err(load_error)?;
        let children = render::render(&object, &config).map_err(|source| CliError::Render {
            path: path.clone(),
            source,
        })?;
        let yaml = children
            .to_yaml()
            .map_err(|e| CliError::Output(e.to_string()))?;
        out.write_all(yaml.as_bytes())
            .map_err(|e| CliError::Output(e.to_string()))?;
        rendered += 1;
    }
    if rendered == 0 {
        return Err(CliError::Empty { path });
    }
    Ok(())
}
