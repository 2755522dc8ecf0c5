//! `modelserver-operator render`, run as the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn render(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelserver-operator"))
        .arg("render")
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn renders_the_iris_example_as_yaml_documents() {
    let file = repo("examples/iris/modelserver.yaml");
    let out = render(&[
        "-f",
        file.to_str().unwrap(),
        "--sidecar-image",
        "reg.example/sidecar:9",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    let kinds: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "NetworkPolicy"
        ]
    );
    assert!(yaml.contains("image: reg.example/sidecar:9"));
}

#[test]
fn an_invalid_file_exits_non_zero_with_the_rule_message() {
    let file = repo("examples/invalid/autoscaling-max-below-min.yaml");
    let out = render(&["-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "nothing is printed for an invalid file"
    );
    assert!(
        text(&out.stderr)
            .contains("spec.autoscaling: spec.autoscaling.maxReplicas must be >= minReplicas"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_inputs_get_clear_errors() {
    let missing = render(&["-f", "/nonexistent/ms.yaml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("reading /nonexistent/ms.yaml"));

    let secret = repo("examples/upstream/secret.yaml");
    let no_model = render(&["-f", secret.to_str().unwrap()]);
    assert_eq!(no_model.status.code(), Some(1));
    assert!(text(&no_model.stderr).contains("no ModelServer document"));

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.yaml");
    std::fs::write(&garbage, "kind: [unclosed\n").unwrap();
    let out = render(&["-f", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not valid YAML"),
        "{}",
        text(&out.stderr)
    );

    let wrong_version = dir.path().join("v2.yaml");
    std::fs::write(
        &wrong_version,
        "apiVersion: modelserver.dev/v2\nkind: ModelServer\nmetadata: {name: a}\nspec: {}\n",
    )
    .unwrap();
    let out = render(&["-f", wrong_version.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a ModelServer"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_namespace_flag_fills_in_a_missing_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ms.yaml");
    std::fs::write(
        &file,
        "apiVersion: modelserver.dev/v1alpha1\nkind: ModelServer\nmetadata: {name: a}\nspec: {image: i, model: {command: [p]}}\n",
    )
    .unwrap();
    let out = render(&["-f", file.to_str().unwrap(), "--namespace", "team-a"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("namespace: team-a"));
}
