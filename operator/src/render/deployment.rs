//! The Deployment: the model container behind the sidecar, probes from the sidecar's admin
//! port, the drain preStop hook, a derived grace period, and the restricted security profile.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, ExecAction, HTTPGetAction,
    KeyToPath, Lifecycle, LifecycleHandler, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use modelserver_contract::admin;
use modelserver_crds::{ModelServer, defaults};

use crate::render::RenderConfig;
use crate::render::meta::{child_meta, common_labels, label_selector};
use crate::render::names;
use crate::render::settings::{Mode, Settings};

/// Period of the startup probe; its failureThreshold is derived from startupTimeout.
const STARTUP_PROBE_PERIOD_SECONDS: i32 = 2;
/// Proxy mode: how long the native sidecar may take to answer `/livez` (it binds at once).
const NATIVE_SIDECAR_START_SECONDS: i32 = 30;
/// Period of the readiness probe.
const READINESS_PROBE_PERIOD_SECONDS: i32 = 2;
/// Period of the liveness probe.
const LIVENESS_PROBE_PERIOD_SECONDS: i32 = 10;
/// Least extra time after startupTimeout before a rollout counts as stuck.
const MIN_PROGRESS_DEADLINE_SLACK_SECONDS: i32 = 30;
/// The sidecar writes its last words (why it gave up, the workers' last output) to the default
/// terminationMessagePath; when it could not, the kubelet takes the log's tail instead. The
/// operator quotes the message in the status (reason WorkerCrashLoop).
pub const TERMINATION_MESSAGE_POLICY: &str = "FallbackToLogsOnError";

/// Renders the Deployment of `object`.
pub fn deployment(
    object: &ModelServer,
    name: &str,
    namespace: &str,
    settings: &Settings,
    config: &RenderConfig,
) -> Deployment {
    let spec = &object.spec;
    let rollout = spec.rollout.clone().unwrap_or_default();
    let startup_seconds = i32::try_from(settings.startup_timeout.as_secs()).unwrap_or(i32::MAX);
    Deployment {
        metadata: child_meta(object, name, namespace),
        spec: Some(DeploymentSpec {
            // Left out while an autoscaler owns the replica count, so the operator never fights it.
            replicas: match spec.autoscaling {
                Some(_) => None,
                None => Some(spec.replicas.unwrap_or(defaults::REPLICAS)),
            },
            selector: label_selector(name),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(rollout.max_surge.unwrap_or_else(|| {
                        IntOrString::String(defaults::ROLLOUT_MAX_SURGE.to_owned())
                    })),
                    max_unavailable: Some(
                        rollout
                            .max_unavailable
                            .unwrap_or(IntOrString::Int(defaults::ROLLOUT_MAX_UNAVAILABLE)),
                    ),
                }),
            }),
            // A new pod may take the whole startup budget to become ready; half of it again (at
            // least 30 s) on top, and a rollout that still made no progress is stuck (Stalled).
            progress_deadline_seconds: Some(
                startup_seconds
                    .saturating_add((startup_seconds / 2).max(MIN_PROGRESS_DEADLINE_SLACK_SECONDS)),
            ),
            template: pod_template(object, name, settings, config),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn pod_template(
    object: &ModelServer,
    name: &str,
    settings: &Settings,
    config: &RenderConfig,
) -> PodTemplateSpec {
    let spec = &object.spec;
    let pod = spec.pod.clone().unwrap_or_default();
    // The user's pod labels first, so the operator's (which the selector relies on) win.
    let mut labels: BTreeMap<String, String> = pod.labels.unwrap_or_default();
    labels.extend(common_labels(name));

    let install = install_container(config);
    let (init_containers, containers) = match &settings.mode {
        Mode::Managed { command } => (
            vec![install],
            vec![managed_model_container(object, command, settings)],
        ),
        Mode::Proxy { .. } => (
            vec![install, proxy_sidecar_container(settings, config)],
            vec![proxy_model_container(object)],
        ),
    };
    let mut volumes = vec![empty_dir(names::BIN_VOLUME), empty_dir(names::TMP_VOLUME)];
    if matches!(settings.mode, Mode::Managed { .. }) {
        volumes.push(empty_dir(names::SOCKET_VOLUME));
    }
    if let Some(secret) = &settings.tls_secret {
        volumes.push(Volume {
            name: names::TLS_VOLUME.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                items: Some(
                    [names::TLS_CERT, names::TLS_KEY]
                        .map(|key| KeyToPath {
                            key: key.to_owned(),
                            path: key.to_owned(),
                            mode: None,
                        })
                        .to_vec(),
                ),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }

    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: pod.annotations,
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            init_containers: Some(init_containers),
            containers,
            volumes: Some(volumes),
            termination_grace_period_seconds: Some(settings.termination_grace_period_seconds),
            // Service links would put an env var per Service of the namespace into every worker.
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(names::RUN_AS_ID),
                run_as_group: Some(names::RUN_AS_ID),
                fs_group: Some(names::RUN_AS_ID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            image_pull_secrets: spec.image_pull_secrets.clone(),
            // A model needs no Kubernetes API token: none is mounted unless the user names a
            // ServiceAccount, whose own automountServiceAccountToken then decides.
            automount_service_account_token: match pod.service_account_name.as_deref() {
                Some(account) if !account.is_empty() => None,
                _ => Some(false),
            },
            service_account_name: pod.service_account_name,
            node_selector: pod.node_selector,
            tolerations: pod.tolerations,
            affinity: pod.affinity,
            topology_spread_constraints: pod.topology_spread_constraints,
            priority_class_name: pod.priority_class_name,
            ..PodSpec::default()
        }),
    }
}

/// The init container that copies the static sidecar binary into the shared emptyDir.
fn install_container(config: &RenderConfig) -> Container {
    Container {
        name: names::INSTALL_CONTAINER.to_owned(),
        image: Some(config.sidecar_image.clone()),
        image_pull_policy: config.sidecar_image_pull_policy.clone(),
        command: Some(vec![
            names::SIDECAR_IMAGE_BINARY.to_owned(),
            modelserver_contract::cli::INSTALL.to_owned(),
            names::BIN_DIR.to_owned(),
        ]),
        volume_mounts: Some(vec![mount(names::BIN_VOLUME, names::BIN_DIR, false)]),
        resources: Some(sidecar_resources()),
        security_context: Some(restricted_container()),
        ..Container::default()
    }
}

/// Managed mode: the model image runs the installed sidecar, which starts the model command.
fn managed_model_container(
    object: &ModelServer,
    command: &[String],
    settings: &Settings,
) -> Container {
    let model = &object.spec.model;
    let mut full_command = vec![
        names::SIDECAR_BINARY.to_owned(),
        modelserver_contract::cli::SERVE.to_owned(),
        "--".to_owned(),
    ];
    full_command.extend(command.iter().cloned());
    let mut env = model.env.clone().unwrap_or_default();
    env.extend(settings.sidecar_env());
    Container {
        name: names::MODEL_CONTAINER.to_owned(),
        image: Some(object.spec.image.clone()),
        image_pull_policy: Some(
            object
                .spec
                .image_pull_policy
                .map_or(defaults::IMAGE_PULL_POLICY, |p| p.as_str())
                .to_owned(),
        ),
        command: Some(full_command),
        args: model.args.clone(),
        working_dir: model.working_dir.clone(),
        env: Some(env),
        env_from: model.env_from.clone(),
        ports: Some(serving_ports(settings)),
        resources: object.spec.resources.clone(),
        startup_probe: Some(startup_probe(settings)),
        readiness_probe: Some(readiness_probe()),
        liveness_probe: Some(liveness_probe()),
        lifecycle: Some(drain_pre_stop()),
        security_context: Some(restricted_container()),
        termination_message_policy: Some(TERMINATION_MESSAGE_POLICY.to_owned()),
        volume_mounts: Some(with_tls_mount(
            settings,
            vec![
                mount(names::BIN_VOLUME, names::BIN_DIR, true),
                mount(names::SOCKET_VOLUME, names::SOCKET_DIR, false),
                mount(names::TMP_VOLUME, names::TMP_DIR, false),
            ],
        )),
        ..Container::default()
    }
}

/// Proxy mode: the sidecar as a native sidecar (an init container that keeps running), so it
/// starts before the model and stops after it.
fn proxy_sidecar_container(settings: &Settings, config: &RenderConfig) -> Container {
    Container {
        name: names::SIDECAR_CONTAINER.to_owned(),
        image: Some(config.sidecar_image.clone()),
        image_pull_policy: config.sidecar_image_pull_policy.clone(),
        restart_policy: Some("Always".to_owned()),
        command: Some(vec![
            names::SIDECAR_IMAGE_BINARY.to_owned(),
            // The upstream address comes in MODELSERVER_UPSTREAM, like every other setting.
            modelserver_contract::cli::PROXY.to_owned(),
        ]),
        env: Some(settings.sidecar_env()),
        ports: Some(serving_ports(settings)),
        resources: Some(sidecar_resources()),
        startup_probe: Some(native_sidecar_started_probe()),
        readiness_probe: Some(readiness_probe()),
        liveness_probe: Some(liveness_probe()),
        security_context: Some(restricted_container()),
        termination_message_policy: Some(TERMINATION_MESSAGE_POLICY.to_owned()),
        volume_mounts: Some(with_tls_mount(
            settings,
            vec![mount(names::TMP_VOLUME, names::TMP_DIR, false)],
        )),
        ..Container::default()
    }
}

/// The sidecar's mounts, with the TLS Secret's directory when TLS is on (the whole directory,
/// never a subPath, so the kubelet's updates of a renewed certificate reach the sidecar).
fn with_tls_mount(settings: &Settings, mut mounts: Vec<VolumeMount>) -> Vec<VolumeMount> {
    if settings.tls() {
        mounts.push(mount(names::TLS_VOLUME, names::TLS_DIR, true));
    }
    mounts
}

/// Proxy mode: the model keeps its own entrypoint; its preStop drains the sidecar first, so
/// the model outlives its last request.
fn proxy_model_container(object: &ModelServer) -> Container {
    let model = &object.spec.model;
    Container {
        name: names::MODEL_CONTAINER.to_owned(),
        image: Some(object.spec.image.clone()),
        image_pull_policy: Some(
            object
                .spec
                .image_pull_policy
                .map_or(defaults::IMAGE_PULL_POLICY, |p| p.as_str())
                .to_owned(),
        ),
        args: model.args.clone(),
        working_dir: model.working_dir.clone(),
        env: model.env.clone(),
        env_from: model.env_from.clone(),
        resources: object.spec.resources.clone(),
        lifecycle: Some(drain_pre_stop()),
        security_context: Some(restricted_container()),
        // The model's own server: its log's tail is the best account of why it stopped.
        termination_message_policy: Some(TERMINATION_MESSAGE_POLICY.to_owned()),
        volume_mounts: Some(vec![
            mount(names::BIN_VOLUME, names::BIN_DIR, true),
            mount(names::TMP_VOLUME, names::TMP_DIR, false),
        ]),
        ..Container::default()
    }
}

fn serving_ports(settings: &Settings) -> Vec<ContainerPort> {
    vec![
        ContainerPort {
            name: Some(names::HTTP_PORT_NAME.to_owned()),
            container_port: settings.port(),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        },
        ContainerPort {
            name: Some(names::ADMIN_PORT_NAME.to_owned()),
            container_port: settings.admin_port(),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        },
    ]
}

fn admin_get(path: &str) -> Option<HTTPGetAction> {
    Some(HTTPGetAction {
        path: Some(path.to_owned()),
        port: IntOrString::String(names::ADMIN_PORT_NAME.to_owned()),
        scheme: Some("HTTP".to_owned()),
        ..HTTPGetAction::default()
    })
}

/// The model has startupTimeout to load: failureThreshold x period = startupTimeout.
fn startup_probe(settings: &Settings) -> Probe {
    let seconds = settings.startup_timeout.as_secs().max(1);
    let period = u64::try_from(STARTUP_PROBE_PERIOD_SECONDS).unwrap_or(1);
    Probe {
        http_get: admin_get(admin::READYZ_PATH),
        period_seconds: Some(STARTUP_PROBE_PERIOD_SECONDS),
        failure_threshold: Some(i32::try_from(seconds.div_ceil(period)).unwrap_or(i32::MAX)),
        timeout_seconds: Some(1),
        ..Probe::default()
    }
}

/// Proxy mode: the kubelet starts the model container only once the native sidecar's startup
/// probe passes, so that probe must not wait for the model (a real node deadlocked on
/// `/readyz` here: the sidecar waited for the model, the model for the sidecar). It asks only
/// whether the sidecar is up; the readiness probe still waits for the upstream, and a model
/// that never loads ends at the Deployment's progress deadline, derived from the startup budget.
fn native_sidecar_started_probe() -> Probe {
    Probe {
        http_get: admin_get(admin::LIVEZ_PATH),
        period_seconds: Some(1),
        failure_threshold: Some(NATIVE_SIDECAR_START_SECONDS),
        timeout_seconds: Some(1),
        ..Probe::default()
    }
}

fn readiness_probe() -> Probe {
    Probe {
        http_get: admin_get(admin::READYZ_PATH),
        period_seconds: Some(READINESS_PROBE_PERIOD_SECONDS),
        // Two misses (4 s) before endpoints drop the pod; drainDelay covers that window.
        failure_threshold: Some(2),
        success_threshold: Some(1),
        timeout_seconds: Some(1),
        ..Probe::default()
    }
}

fn liveness_probe() -> Probe {
    Probe {
        http_get: admin_get(admin::LIVEZ_PATH),
        period_seconds: Some(LIVENESS_PROBE_PERIOD_SECONDS),
        failure_threshold: Some(3),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// preStop: `modelserver-sidecar drain`, which returns once in-flight requests are done.
fn drain_pre_stop() -> Lifecycle {
    Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec![
                    names::SIDECAR_BINARY.to_owned(),
                    modelserver_contract::cli::DRAIN.to_owned(),
                ]),
            }),
            ..LifecycleHandler::default()
        }),
        ..Lifecycle::default()
    }
}

/// The restricted Pod Security Standard for a container.
fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// Small, fixed resources for the sidecar's own containers.
fn sidecar_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("50m".to_owned())),
            ("memory".to_owned(), Quantity("32Mi".to_owned())),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity("128Mi".to_owned()),
        )])),
        claims: None,
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}
