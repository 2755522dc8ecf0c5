use serde_json::{Value, json};

use super::*;

/// A pod of ModelServer `iris` with these container and init container statuses.
fn pod(name: &str, containers: Value, init_containers: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "labels": {"app.kubernetes.io/instance": "iris"}},
        "spec": {
            "initContainers": [
                {"name": "install-sidecar", "image": "modelserver-sidecar:1"},
                {"name": "modelserver-sidecar", "image": "modelserver-sidecar:1", "restartPolicy": "Always"},
            ],
            "containers": [{
                "name": "model",
                "image": "registry.example.com/acme/iris:1.4.0",
                "resources": {"limits": {"memory": "512Mi"}},
            }],
        },
        "status": {"phase": "Running", "containerStatuses": containers, "initContainerStatuses": init_containers},
    }))
    .expect("a pod")
}

fn status(name: &str, state: Value, last_state: Value, restarts: i32, ready: bool) -> Value {
    json!({
        "name": name,
        "image": "registry.example.com/acme/iris:1.4.0",
        "imageID": "",
        "state": state,
        "lastState": last_state,
        "restartCount": restarts,
        "ready": ready,
    })
}

fn waiting(reason: &str, message: &str) -> Value {
    json!({"waiting": {"reason": reason, "message": message}})
}

fn running() -> Value {
    json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}})
}

fn terminated(exit_code: i32, reason: &str, message: &str) -> Value {
    json!({"terminated": {"exitCode": exit_code, "reason": reason, "message": message}})
}

fn model(state: Value, last_state: Value, restarts: i32, ready: bool) -> Pod {
    pod(
        "iris-7d9f-abcde",
        json!([status("model", state, last_state, restarts, ready)]),
        json!([]),
    )
}

fn healthy(name: &str) -> Pod {
    pod(
        name,
        json!([status("model", running(), json!({}), 0, true)]),
        json!([]),
    )
}

const SIDECAR_LAST_WORDS: &str = "WorkerCrashLoop: worker 0 exited 6 times in 10m; last exit: exit status 1\nlast output of worker 0:\nTraceback (most recent call last):\nModuleNotFoundError: No module named 'sklearn'";

#[test]
fn a_missing_secret_names_the_secret_the_pod_and_the_container() {
    let pod = model(
        waiting(
            CREATE_CONTAINER_CONFIG_ERROR,
            "secret \"iris-token\" not found",
        ),
        json!({}),
        0,
        false,
    );
    let problem = diagnose([&pod]).expect("a problem");
    assert_eq!(
        problem,
        PodProblem::SecretNotFound {
            at: ContainerRef {
                pod: "iris-7d9f-abcde".into(),
                container: "model".into()
            },
            secret: "iris-token".into(),
            key: None,
        }
    );
    assert_eq!(
        problem.message(),
        "Secret \"iris-token\" not found: container model of pod iris-7d9f-abcde cannot start until it exists (the kubelet retries by itself)"
    );
}

#[test]
fn a_missing_key_names_the_key() {
    let pod = model(
        waiting(
            CREATE_CONTAINER_CONFIG_ERROR,
            "couldn't find key token in Secret ml/iris-token",
        ),
        json!({}),
        0,
        false,
    );
    let problem = diagnose([&pod]).expect("a problem");
    assert!(matches!(
        &problem,
        PodProblem::SecretNotFound { secret, key: Some(key), .. } if secret == "iris-token" && key == "token"
    ));
    assert!(problem.message().starts_with(
        "Secret \"iris-token\" has no key \"token\": container model of pod iris-7d9f-abcde"
    ));
}

#[test]
fn another_config_error_keeps_the_kubelets_message() {
    let pod = model(
        waiting(
            CREATE_CONTAINER_CONFIG_ERROR,
            "configmap \"iris-env\" not found",
        ),
        json!({}),
        0,
        false,
    );
    let problem = diagnose([&pod]).expect("a problem");
    assert_eq!(
        problem.message(),
        "container model of pod iris-7d9f-abcde cannot start: configmap \"iris-env\" not found"
    );
}

#[test]
fn the_kubelets_secret_messages_are_parsed() {
    assert_eq!(
        missing_secret("secret \"a\" not found"),
        Some(("a".into(), None))
    );
    assert_eq!(
        missing_secret("couldn't find key k in Secret ns/a"),
        Some(("a".into(), Some("k".into())))
    );
    assert_eq!(missing_secret("configmap \"a\" not found"), None);
    assert_eq!(missing_secret("secret \"a\" is forbidden"), None);
    assert_eq!(
        missing_secret("couldn't find key k in ConfigMap ns/a"),
        None
    );
}

#[test]
fn a_crash_loop_names_the_container_and_quotes_its_last_words() {
    let pod = model(
        waiting(
            CRASH_LOOP_BACK_OFF,
            "back-off 40s restarting failed container=model",
        ),
        terminated(1, "Error", SIDECAR_LAST_WORDS),
        3,
        false,
    );
    let problem = diagnose([&pod]).expect("a problem");
    assert_eq!(
        problem.message(),
        format!(
            "container model of pod iris-7d9f-abcde keeps exiting: it exited with code 1, restarted 3 times; its last words:\n{SIDECAR_LAST_WORDS}"
        )
    );
}

#[test]
fn a_failed_container_that_has_not_served_since_is_a_crash_loop() {
    // Between two back-offs the container runs again but is not ready yet.
    let pod = model(running(), terminated(1, "Error", "boom"), 1, false);
    assert!(matches!(
        diagnose([&pod]),
        Some(PodProblem::CrashLoop {
            restarts: 1,
            last_exit: LastExit::Code(1),
            ..
        })
    ));
}

#[test]
fn a_container_that_failed_once_and_serves_again_is_fine() {
    let pod = model(running(), terminated(1, "Error", "boom"), 1, true);
    assert_eq!(diagnose([&pod]), None);
    // A clean exit (exit 0) that is restarting is not a failure either.
    let pod = model(running(), terminated(0, "Completed", ""), 1, false);
    assert_eq!(diagnose([&pod]), None);
}

#[test]
fn an_oom_kill_says_the_memory_limit() {
    let pod = model(
        waiting(CRASH_LOOP_BACK_OFF, ""),
        terminated(137, OOM_KILLED, ""),
        2,
        false,
    );
    let problem = diagnose([&pod]).expect("a problem");
    assert_eq!(
        problem.message(),
        "container model of pod iris-7d9f-abcde keeps exiting: it was killed by its memory limit (512Mi), restarted 2 times"
    );
}

#[test]
fn the_proxy_sidecar_crash_loop_is_reported_but_not_the_install_container() {
    let sidecar = pod(
        "iris-1",
        json!([status(
            "model",
            waiting("PodInitializing", ""),
            json!({}),
            0,
            false
        )]),
        json!([
            status(
                "install-sidecar",
                terminated(0, "Completed", ""),
                json!({}),
                0,
                false
            ),
            status(
                "modelserver-sidecar",
                waiting(CRASH_LOOP_BACK_OFF, ""),
                terminated(2, "Error", "bad upstream"),
                4,
                false
            ),
        ]),
    );
    let problem = diagnose([&sidecar]).expect("a problem");
    assert!(problem.message().starts_with(
        "container modelserver-sidecar of pod iris-1 keeps exiting: it exited with code 2"
    ));
    let install = pod(
        "iris-1",
        json!([]),
        json!([status(
            "install-sidecar",
            waiting(CRASH_LOOP_BACK_OFF, ""),
            terminated(1, "Error", ""),
            4,
            false
        )]),
    );
    assert_eq!(diagnose([&install]), None);
}

#[test]
fn an_image_that_cannot_be_pulled_is_named_with_the_kubelets_message() {
    let pulling = model(
        waiting(
            "ImagePullBackOff",
            "Back-off pulling image \"registry.example.com/acme/iris:1.4.0\": not found",
        ),
        json!({}),
        0,
        false,
    );
    let problem = diagnose([&pulling]).expect("a problem");
    assert_eq!(
        problem.message(),
        "container model of pod iris-7d9f-abcde cannot pull image \"registry.example.com/acme/iris:1.4.0\" (ImagePullBackOff): Back-off pulling image \"registry.example.com/acme/iris:1.4.0\": not found"
    );
    // The sidecar image of the install init container counts too.
    let install = pod(
        "iris-1",
        json!([]),
        json!([{"name": "install-sidecar", "image": "modelserver-sidecar:1", "imageID": "", "state": waiting("ErrImagePull", ""), "restartCount": 0, "ready": false}]),
    );
    assert_eq!(
        diagnose([&install]).expect("a problem").message(),
        "container install-sidecar of pod iris-1 cannot pull image \"modelserver-sidecar:1\" (ErrImagePull)"
    );
}

#[test]
fn the_worst_problem_wins_and_healthy_pods_hide_nothing() {
    let pull = pod(
        "iris-a",
        json!([status(
            "model",
            waiting("ErrImagePull", "x"),
            json!({}),
            0,
            false
        )]),
        json!([]),
    );
    let crash = pod(
        "iris-b",
        json!([status(
            "model",
            waiting(CRASH_LOOP_BACK_OFF, ""),
            terminated(1, "Error", ""),
            2,
            false
        )]),
        json!([]),
    );
    let secret = pod(
        "iris-c",
        json!([status(
            "model",
            waiting(CREATE_CONTAINER_CONFIG_ERROR, "secret \"t\" not found"),
            json!({}),
            0,
            false
        )]),
        json!([]),
    );
    let old = healthy("iris-0");
    assert!(matches!(
        diagnose([&old, &pull, &crash, &secret]),
        Some(PodProblem::SecretNotFound { .. })
    ));
    assert!(matches!(
        diagnose([&pull, &old, &crash]),
        Some(PodProblem::CrashLoop { .. })
    ));
    assert!(matches!(
        diagnose([&old, &pull]),
        Some(PodProblem::ImagePull { .. })
    ));
    assert_eq!(diagnose([&old, &healthy("iris-9")]), None);
}

#[test]
fn ties_go_to_the_first_pod_by_name_whatever_the_store_order() {
    let crash = |name: &str| {
        pod(
            name,
            json!([status(
                "model",
                waiting(CRASH_LOOP_BACK_OFF, ""),
                terminated(1, "Error", ""),
                2,
                false
            )]),
            json!([]),
        )
    };
    let (a, b) = (crash("iris-a"), crash("iris-b"));
    let first = diagnose([&b, &a]).expect("a problem");
    assert_eq!(first, diagnose([&a, &b]).expect("a problem"));
    assert!(first.message().contains("pod iris-a"));
}

#[test]
fn pods_being_deleted_or_finished_do_not_count() {
    let mut deleting = model(
        waiting(CRASH_LOOP_BACK_OFF, ""),
        terminated(1, "Error", ""),
        2,
        false,
    );
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
    );
    assert_eq!(diagnose([&deleting]), None);
    let mut failed = model(
        waiting(CRASH_LOOP_BACK_OFF, ""),
        terminated(1, "Error", ""),
        2,
        false,
    );
    if let Some(status) = failed.status.as_mut() {
        status.phase = Some("Failed".into());
    }
    assert_eq!(diagnose([&failed]), None);
}

#[test]
fn a_long_termination_message_keeps_its_first_line_and_its_last_lines() {
    let mut text =
        String::from("WorkerCrashLoop: worker 0 exited 6 times in 10m; last exit: exit status 1");
    for i in 0..30 {
        text.push_str(&format!("\nline {i}"));
    }
    let trimmed = trim_termination_message(&text);
    let lines: Vec<&str> = trimmed.lines().collect();
    assert_eq!(lines.len(), TERMINATION_MESSAGE_MAX_LINES + 1, "{trimmed}");
    assert!(lines[0].starts_with("WorkerCrashLoop: worker 0 exited 6 times"));
    assert_eq!(lines[1], "...");
    assert_eq!(lines[2], "line 21");
    assert_eq!(lines[10], "line 29");
    // Short messages pass unchanged (but for trailing whitespace).
    assert_eq!(trim_termination_message("a\nb\n\n"), "a\nb");
    assert_eq!(trim_termination_message(""), "");
}

#[test]
fn a_huge_termination_message_is_cut_to_its_byte_budget_on_character_boundaries() {
    let line = "é".repeat(600);
    let text = format!("{line}\n{line}\n{line}");
    let trimmed = trim_termination_message(&text);
    assert!(
        trimmed.len() <= TERMINATION_MESSAGE_MAX_BYTES,
        "{}",
        trimmed.len()
    );
    assert!(trimmed.starts_with("éé"));
    assert!(trimmed.ends_with("éé"));
    assert!(trimmed.contains("\n..."));
    // A long first line that fits the budget is kept whole.
    let long = format!("{}\nlast", "x".repeat(900));
    assert_eq!(trim_termination_message(&long), long);
}
