use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use modelserver_crds::ModelServer;
use serde_json::json;

use super::*;
use crate::labels;

fn object(spec: serde_json::Value) -> ModelServer {
    let mut base = json!({"image": "img:1", "model": {"command": ["python3", "w.py"]}});
    if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(
        json!({"apiVersion": "modelserver.dev/v1alpha1", "kind": "ModelServer",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "1234-abcd"}, "spec": base}),
    )
    .expect("valid object")
}

fn rendered(spec: serde_json::Value) -> Children {
    render(&object(spec), &RenderConfig::default()).expect("renders")
}

fn pod(children: &Children) -> &PodSpec {
    children
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec")
}

fn container<'a>(containers: &'a [Container], name: &str) -> &'a Container {
    containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env_value(container: &Container, name: &str) -> Option<String> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
}

#[test]
fn replicas_default_to_one_and_follow_the_spec() {
    let replicas = |c: &Children| c.deployment.spec.as_ref().and_then(|s| s.replicas);
    assert_eq!(replicas(&rendered(json!({}))), Some(1));
    assert_eq!(replicas(&rendered(json!({"replicas": 3}))), Some(3));
}

#[test]
fn an_autoscaler_owns_the_replicas() {
    let children = rendered(json!({"replicas": 3, "autoscaling": {"maxReplicas": 5}}));
    assert_eq!(
        children.deployment.spec.as_ref().and_then(|s| s.replicas),
        None
    );
    let hpa = children.autoscaler.expect("hpa");
    let spec = hpa.spec.expect("hpa spec");
    assert_eq!(spec.min_replicas, Some(1));
    assert_eq!(spec.max_replicas, 5);
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    assert_eq!(spec.scale_target_ref.name, "iris");
    let target = &spec.metrics.expect("metrics")[0];
    let resource = target.resource.as_ref().expect("resource metric");
    assert_eq!(resource.target.average_utilization, Some(70));
    assert!(rendered(json!({})).autoscaler.is_none());
}

#[test]
fn a_disruption_budget_comes_with_two_or_more_replicas() {
    assert!(rendered(json!({})).disruption_budget.is_none());
    assert!(rendered(json!({"replicas": 1})).disruption_budget.is_none());
    let budget = rendered(json!({"replicas": 2}))
        .disruption_budget
        .expect("pdb");
    let spec = budget.spec.expect("spec");
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(spec.min_available, None);
    // Autoscaled: the floor is minReplicas, not spec.replicas.
    assert!(
        rendered(json!({"replicas": 5, "autoscaling": {"maxReplicas": 5}}))
            .disruption_budget
            .is_none()
    );
    assert!(
        rendered(json!({"autoscaling": {"minReplicas": 2, "maxReplicas": 5}}))
            .disruption_budget
            .is_some()
    );
    // Explicit choices win both ways.
    assert!(
        rendered(json!({"replicas": 4, "disruption": {"enabled": false}}))
            .disruption_budget
            .is_none()
    );
    assert!(
        rendered(json!({"disruption": {"enabled": true}}))
            .disruption_budget
            .is_some()
    );
    let min = rendered(json!({"replicas": 3, "disruption": {"minAvailable": "50%"}}))
        .disruption_budget
        .and_then(|b| b.spec)
        .expect("pdb");
    assert_eq!(min.min_available, Some(IntOrString::String("50%".into())));
    assert_eq!(min.max_unavailable, None);
}

#[test]
fn grace_period_and_startup_budget_are_derived_from_the_lifecycle() {
    let defaults = rendered(json!({}));
    // 5s + 30s + 10s + 5s.
    assert_eq!(pod(&defaults).termination_grace_period_seconds, Some(50));
    let children = rendered(
        json!({"lifecycle": {"drainDelay": "1500ms", "drainTimeout": "1m",
        "shutdownTimeout": "20s", "startupTimeout": "3m"}}),
    );
    assert_eq!(pod(&children).termination_grace_period_seconds, Some(87));
    let model = container(&pod(&children).containers, "model");
    let startup = model.startup_probe.as_ref().expect("startup probe");
    let period = startup.period_seconds.expect("period");
    let threshold = startup.failure_threshold.expect("threshold");
    assert_eq!(period * threshold, 180);
    assert_eq!(
        env_value(model, "MODELSERVER_DRAIN_DELAY").as_deref(),
        Some("1500ms")
    );
    // A rollout may take the whole startup budget before it counts as stuck.
    let long = rendered(json!({"lifecycle": {"startupTimeout": "30m"}}));
    assert_eq!(
        long.deployment
            .spec
            .and_then(|s| s.progress_deadline_seconds),
        Some(2700)
    );
    let short = rendered(json!({"lifecycle": {"startupTimeout": "20s"}}));
    assert_eq!(
        short
            .deployment
            .spec
            .and_then(|s| s.progress_deadline_seconds),
        Some(50)
    );
}

/// Found by the operator_render fuzz target: drainDelay is checked by its pattern only, so the
/// API server stores a delay as long as the largest Duration, and adding the other budgets to it
/// panicked ("overflow when adding durations") in render, that is in the reconciler.
#[test]
fn huge_lifecycle_durations_saturate_the_grace_period_instead_of_panicking() {
    // u64::MAX seconds, rounded down to whole hours, plus 1ns so the fraction rounds up too.
    let object = object(json!({"lifecycle": {"drainDelay": "5124095576030431h1ns"}}));
    assert!(modelserver_crds::validate::validate(&object).is_empty());
    let children = render(&object, &RenderConfig::default()).expect("renders");
    assert_eq!(
        pod(&children).termination_grace_period_seconds,
        Some(i64::MAX)
    );
    let children = rendered(json!({"lifecycle": {"drainDelay": "5124095576030431h"}}));
    assert_eq!(
        pod(&children).termination_grace_period_seconds,
        Some(i64::MAX)
    );
}

#[test]
fn managed_mode_runs_the_sidecar_in_front_of_the_command() {
    let children = rendered(
        json!({"model": {"command": ["python3", "w.py"], "args": ["--x", "$(MODELSERVER_WORKER_ID)"]},
        "server": {"workers": 3, "port": 8000}}),
    );
    let pod = pod(&children);
    let install = container(
        pod.init_containers.as_deref().unwrap_or_default(),
        "install-sidecar",
    );
    assert_eq!(
        install.command.as_deref(),
        Some(
            &[
                "/usr/local/bin/modelserver-sidecar".to_owned(),
                "install".into(),
                "/modelserver/bin".into()
            ][..]
        )
    );
    let model = container(&pod.containers, "model");
    assert_eq!(
        model.command.as_deref(),
        Some(
            &[
                "/modelserver/bin/modelserver-sidecar".to_owned(),
                "serve".into(),
                "--".into(),
                "python3".into(),
                "w.py".into()
            ][..]
        )
    );
    assert_eq!(
        model.args.as_deref(),
        Some(&["--x".to_owned(), "$(MODELSERVER_WORKER_ID)".into()][..])
    );
    assert_eq!(
        env_value(model, "MODELSERVER_WORKERS").as_deref(),
        Some("3")
    );
    assert_eq!(
        env_value(model, "MODELSERVER_PORT").as_deref(),
        Some("8000")
    );
    let ports: Vec<_> = model
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        vec![("http".to_owned(), 8000), ("admin".to_owned(), 9090)]
    );
    let pre_stop = model
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|p| p.exec.as_ref());
    assert_eq!(
        pre_stop.and_then(|e| e.command.as_deref()),
        Some(
            &[
                "/modelserver/bin/modelserver-sidecar".to_owned(),
                "drain".into()
            ][..]
        )
    );
    for probe in [
        &model.startup_probe,
        &model.readiness_probe,
        &model.liveness_probe,
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("http probe");
        assert_eq!(get.port, IntOrString::String("admin".into()));
    }
}

#[test]
fn every_server_and_lifecycle_setting_changes_the_pod_template() {
    let base = rendered(json!({}));
    let template = |c: &Children| {
        serde_json::to_value(&c.deployment.spec.as_ref().expect("spec").template).expect("json")
    };
    for change in [
        json!({"server": {"port": 8081}}),
        json!({"server": {"workers": 2}}),
        json!({"server": {"executorThreads": 8}}),
        json!({"server": {"maxQueue": 1}}),
        json!({"server": {"maxUploadSize": "1Mi"}}),
        json!({"server": {"requestTimeout": "5s"}}),
        json!({"server": {"docs": {"enabled": true}}}),
        json!({"server": {"cors": {"enabled": true, "allowOrigins": ["https://a.example"]}}}),
        json!({"server": {"cors": {"allowMethods": ["PUT"]}}}),
        json!({"server": {"cors": {"allowHeaders": ["X-A"]}}}),
        json!({"server": {"cors": {"allowCredentials": true}}}),
        json!({"server": {"cors": {"maxAge": "1m"}}}),
        json!({"server": {"auth": {"tokenSecretRef": {"name": "s", "key": "k"}}}}),
        json!({"server": {"logLevel": "debug"}}),
        json!({"server": {"accessLog": false}}),
        json!({"model": {"command": ["p"], "readinessPath": "/healthz"}}),
        json!({"lifecycle": {"startupTimeout": "1m"}}),
        json!({"lifecycle": {"drainDelay": "1s"}}),
        json!({"lifecycle": {"drainTimeout": "1s"}}),
        json!({"lifecycle": {"shutdownTimeout": "1s"}}),
        json!({"lifecycle": {"maxWorkerRestarts": 1}}),
    ] {
        assert_ne!(
            template(&base),
            template(&rendered(change.clone())),
            "{change} did not change the pod template"
        );
    }
}

#[test]
fn auth_reads_the_token_from_the_secret() {
    let children =
        rendered(json!({"server": {"auth": {"tokenSecretRef": {"name": "tok", "key": "token"}}}}));
    let model = container(&pod(&children).containers, "model");
    assert_eq!(
        secret_env(model, "MODELSERVER_AUTH_TOKEN"),
        ("tok".to_owned(), "token".to_owned())
    );
}

/// The Secret name and key variable `name` of `container` comes from; it must have no literal
/// value in the pod spec.
fn secret_env(container: &Container, name: &str) -> (String, String) {
    let var = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    assert!(
        var.value.is_none(),
        "{name} has a literal value in the pod spec"
    );
    let reference = var
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("secret ref");
    (reference.name.clone(), reference.key.clone())
}

#[test]
fn the_sidecar_image_pull_policy_applies_to_every_container_running_the_sidecar_image() {
    let spec = json!({"model": {"upstream": {"port": 8000}}});
    let config = RenderConfig {
        sidecar_image_pull_policy: Some("Always".to_owned()),
        ..RenderConfig::default()
    };
    let children = render(&object(spec.clone()), &config).unwrap();
    let init = pod(&children).init_containers.clone().unwrap_or_default();
    for name in ["install-sidecar", "modelserver-sidecar"] {
        assert_eq!(
            container(&init, name).image_pull_policy.as_deref(),
            Some("Always"),
            "{name}"
        );
    }
    let children = rendered(spec);
    let init = pod(&children).init_containers.clone().unwrap_or_default();
    assert_eq!(container(&init, "install-sidecar").image_pull_policy, None);
}

#[test]
fn proxy_mode_runs_a_native_sidecar_and_keeps_the_model_entrypoint() {
    let children = rendered(
        json!({"model": {"upstream": {"port": 8000, "readinessPath": "/v2/health/ready"}}}),
    );
    let pod = pod(&children);
    let init = pod.init_containers.as_deref().unwrap_or_default();
    assert_eq!(
        init.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["install-sidecar", "modelserver-sidecar"]
    );
    let sidecar = container(init, "modelserver-sidecar");
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        env_value(sidecar, "MODELSERVER_UPSTREAM").as_deref(),
        Some("127.0.0.1:8000")
    );
    assert_eq!(
        env_value(sidecar, "MODELSERVER_READINESS_PATH").as_deref(),
        Some("/v2/health/ready")
    );
    assert!(sidecar.readiness_probe.is_some());
    // The model container starts only after the native sidecar's startup probe passes: that
    // probe must not wait for the model.
    let started = sidecar.startup_probe.as_ref().expect("startup probe");
    assert_eq!(
        started.http_get.as_ref().and_then(|g| g.path.as_deref()),
        Some("/livez")
    );
    let model = container(&pod.containers, "model");
    assert_eq!(model.command, None, "the image's own entrypoint runs");
    assert!(
        model
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .is_some(),
        "the model waits for the drain"
    );
    assert!(
        model
            .env
            .iter()
            .flatten()
            .all(|e| !e.name.starts_with("MODELSERVER_"))
    );
}

#[test]
fn the_upstream_credential_reaches_only_the_sidecar_and_from_the_secret() {
    let children = rendered(json!({"model": {"upstream": {"port": 8000, "auth": {
        "tokenSecretRef": {"name": "keys", "key": "model"}, "header": "X-Api-Key"}}}}));
    let spec = pod(&children);
    let sidecar = container(
        spec.init_containers.as_deref().unwrap_or_default(),
        "modelserver-sidecar",
    );
    assert_eq!(
        secret_env(sidecar, "MODELSERVER_UPSTREAM_CREDENTIAL"),
        ("keys".to_owned(), "model".to_owned())
    );
    assert_eq!(
        env_value(sidecar, "MODELSERVER_UPSTREAM_CREDENTIAL_HEADER").as_deref(),
        Some("x-api-key")
    );
    let model = container(&spec.containers, "model");
    assert!(
        model
            .env
            .iter()
            .flatten()
            .all(|e| !e.name.starts_with("MODELSERVER_"))
    );
    // Without a header the sidecar's default (Authorization: Bearer) applies.
    let children = rendered(json!({"model": {"upstream": {"port": 8000, "auth": {
        "tokenSecretRef": {"name": "keys", "key": "model"}}}}}));
    let sidecar = container(
        pod(&children)
            .init_containers
            .as_deref()
            .unwrap_or_default(),
        "modelserver-sidecar",
    );
    assert_eq!(
        env_value(sidecar, "MODELSERVER_UPSTREAM_CREDENTIAL_HEADER"),
        None
    );
}

#[test]
fn tls_mounts_the_secret_into_the_sidecars_container_only_and_says_https() {
    for (spec, sidecar_in_init) in [
        (json!({"server": {"tls": {"secretName": "certs"}}}), false),
        (
            json!({"model": {"upstream": {"port": 8000}}, "server": {"tls": {"secretName": "certs"}}}),
            true,
        ),
    ] {
        let children = rendered(spec);
        let spec = pod(&children);
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "modelserver-tls")
            .expect("tls volume");
        assert_eq!(
            volume
                .secret
                .as_ref()
                .and_then(|s| s.secret_name.as_deref()),
            Some("certs")
        );
        let sidecar = if sidecar_in_init {
            container(
                spec.init_containers.as_deref().unwrap_or_default(),
                "modelserver-sidecar",
            )
        } else {
            container(&spec.containers, "model")
        };
        let mounted = sidecar
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "modelserver-tls")
            .expect("tls mount");
        assert_eq!(
            (
                mounted.mount_path.as_str(),
                mounted.read_only,
                mounted.sub_path.as_deref()
            ),
            ("/modelserver/tls", Some(true), None),
            "the whole directory, so renewals reach the sidecar"
        );
        assert_eq!(
            env_value(sidecar, "MODELSERVER_TLS_CERT_FILE").as_deref(),
            Some("/modelserver/tls/tls.crt")
        );
        assert_eq!(
            env_value(sidecar, "MODELSERVER_TLS_KEY_FILE").as_deref(),
            Some("/modelserver/tls/tls.key")
        );
        if sidecar_in_init {
            let model = container(&spec.containers, "model");
            assert!(
                model
                    .volume_mounts
                    .iter()
                    .flatten()
                    .all(|m| m.name != "modelserver-tls")
            );
        }
        assert!(
            children.url.starts_with("https://iris.ml.svc."),
            "{}",
            children.url
        );
    }
    let plain = rendered(json!({}));
    assert!(
        pod(&plain)
            .volumes
            .iter()
            .flatten()
            .all(|v| v.name != "modelserver-tls")
    );
    assert!(plain.url.starts_with("http://"));
}

#[test]
fn children_carry_labels_and_a_controller_owner_reference() {
    let children =
        rendered(json!({"replicas": 2, "autoscaling": {"minReplicas": 2, "maxReplicas": 3}}));
    let metas = [
        &children.deployment.metadata,
        &children.service.metadata,
        &children.autoscaler.as_ref().expect("hpa").metadata,
        &children.disruption_budget.as_ref().expect("pdb").metadata,
        &children.network_policy.as_ref().expect("netpol").metadata,
    ];
    for meta in metas {
        assert_eq!(meta.name.as_deref(), Some("iris"));
        assert_eq!(meta.namespace.as_deref(), Some("ml"));
        let labels = meta.labels.as_ref().expect("labels");
        for key in [
            labels::NAME,
            labels::INSTANCE,
            labels::MANAGED_BY,
            labels::PART_OF,
        ] {
            assert!(labels.contains_key(key), "{key}");
        }
        let owner = &meta.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("ModelServer", "iris", "1234-abcd")
        );
        assert_eq!(owner.controller, Some(true));
    }
}

#[test]
fn the_service_targets_the_http_port_and_the_url_names_it() {
    let children = rendered(json!({"service": {"type": "LoadBalancer", "port": 8443}}));
    let spec = children.service.spec.as_ref().expect("spec");
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    let port = &spec.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.port, port.target_port.clone()),
        (8443, Some(IntOrString::String("http".into())))
    );
    assert_eq!(children.url, "http://iris.ml.svc.cluster.local:8443");
    assert_eq!(rendered(json!({})).url, "http://iris.ml.svc.cluster.local");
}

#[test]
fn user_pod_labels_cannot_override_the_selector() {
    let children =
        rendered(json!({"pod": {"labels": {"app.kubernetes.io/instance": "other", "team": "a"}}}));
    let labels = children
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .expect("labels");
    assert_eq!(
        labels.get("app.kubernetes.io/instance").map(String::as_str),
        Some("iris")
    );
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
}

#[test]
fn restricted_security_profile() {
    let children = rendered(json!({}));
    let pod = pod(&children);
    let security = pod.security_context.as_ref().expect("pod security");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(
        security.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c.security_context.as_ref().expect("container security");
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(
            sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()])
        );
    }
}

#[test]
fn the_serving_containers_report_their_last_words_and_the_install_container_does_not() {
    let managed = rendered(json!({}));
    let pod_spec = pod(&managed);
    let policy = |c: &Container| c.termination_message_policy.clone();
    assert_eq!(
        policy(container(&pod_spec.containers, "model")).as_deref(),
        Some("FallbackToLogsOnError")
    );
    let init = pod_spec.init_containers.as_deref().unwrap_or_default();
    assert_eq!(policy(container(init, "install-sidecar")), None);

    let proxy = rendered(json!({"model": {"upstream": {"port": 8000}}}));
    let pod_spec = pod(&proxy);
    let init = pod_spec.init_containers.as_deref().unwrap_or_default();
    for c in [
        container(&pod_spec.containers, "model"),
        container(init, "modelserver-sidecar"),
    ] {
        assert_eq!(
            policy(c).as_deref(),
            Some("FallbackToLogsOnError"),
            "{}",
            c.name
        );
        // The default path, where the sidecar writes.
        assert_eq!(c.termination_message_path, None, "{}", c.name);
    }
}

#[test]
fn no_api_token_is_mounted_unless_a_service_account_is_named() {
    assert_eq!(
        pod(&rendered(json!({}))).automount_service_account_token,
        Some(false)
    );
    assert_eq!(
        pod(&rendered(json!({"pod": {"serviceAccountName": ""}}))).automount_service_account_token,
        Some(false)
    );
    let named = rendered(json!({"pod": {"serviceAccountName": "iris-reader"}}));
    assert_eq!(pod(&named).automount_service_account_token, None);
    assert_eq!(
        pod(&named).service_account_name.as_deref(),
        Some("iris-reader")
    );
}

#[test]
fn a_model_without_a_name_is_refused() {
    let mut object = object(json!({}));
    object.metadata.name = None;
    assert!(matches!(
        render(&object, &RenderConfig::default()),
        Err(RenderError::MissingName)
    ));
}

/// The ports a NetworkPolicy admits, per ingress rule: (ports, whether `from` narrows it).
fn admitted(children: &Children) -> Vec<(Vec<(i32, String)>, bool)> {
    let policy = children.network_policy.as_ref().expect("network policy");
    let spec = policy.spec.as_ref().expect("spec");
    spec.ingress
        .iter()
        .flatten()
        .map(|rule| {
            let ports = rule
                .ports
                .iter()
                .flatten()
                .map(|p| match &p.port {
                    Some(IntOrString::Int(port)) => (*port, p.protocol.clone().unwrap_or_default()),
                    other => panic!("port by number expected: {other:?}"),
                })
                .collect();
            (ports, rule.from.is_some())
        })
        .collect()
}

#[test]
fn a_network_policy_admits_only_the_public_and_admin_ports_by_default() {
    let children = rendered(json!({}));
    let policy = children.network_policy.as_ref().expect("on by default");
    let spec = policy.spec.as_ref().expect("spec");
    assert_eq!(spec.pod_selector, Some(meta::label_selector("iris")));
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_owned()]));
    assert!(spec.egress.is_none());
    assert_eq!(
        admitted(&children),
        vec![
            (vec![(8080, "TCP".to_owned())], false),
            (vec![(9090, "TCP".to_owned())], false),
        ]
    );
    // The selector selects exactly the Deployment's pods.
    let template_labels = children
        .deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .expect("pod labels");
    for (key, value) in meta::selector_labels("iris") {
        assert_eq!(template_labels.get(&key), Some(&value), "{key}");
    }
}

#[test]
fn in_proxy_mode_the_upstream_port_is_not_admitted() {
    let children = rendered(json!({
        "model": {"upstream": {"port": 8000}},
        "server": {"port": 8443},
    }));
    let ports: Vec<i32> = admitted(&children)
        .into_iter()
        .flat_map(|(ports, _)| ports.into_iter().map(|(p, _)| p))
        .collect();
    assert_eq!(ports, vec![8443, 9090]);
    assert!(!ports.contains(&8000));
}

#[test]
fn metrics_from_narrows_only_the_admin_port() {
    let peers = json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]);
    let children = rendered(json!({"networkPolicy": {"metricsFrom": peers}}));
    let policy = children.network_policy.expect("policy");
    let ingress = policy.spec.and_then(|s| s.ingress).expect("ingress");
    assert!(ingress[0].from.is_none(), "the public port stays open");
    assert_eq!(serde_json::to_value(&ingress[1].from).expect("json"), peers);
}

#[test]
fn the_network_policy_can_be_turned_off() {
    assert!(
        rendered(json!({"networkPolicy": {"enabled": false}}))
            .network_policy
            .is_none()
    );
    assert!(
        rendered(json!({"networkPolicy": {"enabled": true}}))
            .network_policy
            .is_some()
    );
}
