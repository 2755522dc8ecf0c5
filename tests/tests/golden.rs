//! `render` of every valid example equals its golden file under tests/golden/. A change to what
//! the operator renders shows up as a reviewed diff of those files. `make golden` rewrites them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use modelserver_operator::cli::{RenderArgs, run_render};
use modelserver_operator::render;

/// The sidecar image the golden files are rendered with.
const GOLDEN_SIDECAR_IMAGE: &str = "registry.example.com/modelserver/modelserver-sidecar:golden";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Valid examples: examples/<name>/modelserver.yaml.
fn examples() -> Vec<(String, PathBuf)> {
    let mut found: Vec<_> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("modelserver.yaml").is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                p.join("modelserver.yaml"),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn rendered_examples_match_their_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let examples = examples();
    assert!(examples.len() >= 3, "{examples:?}");
    let mut stale = Vec::new();
    for (name, file) in &examples {
        let args = RenderArgs {
            file: file.clone(),
            sidecar_image: GOLDEN_SIDECAR_IMAGE.to_owned(),
            namespace: render::DEFAULT_NAMESPACE.to_owned(),
            cluster_domain: render::DEFAULT_CLUSTER_DOMAIN.to_owned(),
            prometheus_url: render::DEFAULT_PROMETHEUS_URL.to_owned(),
        };
        let mut out = Vec::new();
        run_render(&args, &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
        let rendered = format!(
            "# Golden output of `modelserver-operator render -f examples/{name}/modelserver.yaml`.\n# Regenerate with `make golden`.\n{}",
            String::from_utf8(out).unwrap()
        );
        let golden = root().join("tests/golden").join(format!("{name}.yaml"));
        if update {
            std::fs::write(&golden, &rendered).unwrap();
        } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(rendered.as_str()) {
            stale.push(golden.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "golden files differ from what render prints (run `make golden` and review the diff): {stale:?}"
    );
    // No golden file may outlive its example.
    for entry in std::fs::read_dir(root().join("tests/golden")).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            examples.iter().any(|(n, _)| *n == stem),
            "{} has no example",
            path.display()
        );
    }
}
