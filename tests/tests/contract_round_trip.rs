//! The contract between the operator and the sidecar, for every example in both modes: the
//! command line and `MODELSERVER_*` environment `render` gives the sidecar's container are parsed
//! back with the sidecar's own flag definitions (`modelserver_contract::pod_env::parse`, which
//! refuses a variable no flag reads), and the result equals the settings the operator resolved
//! from the spec, field by field. A misspelt variable, a value the sidecar cannot parse, a
//! setting rendered for the wrong mode, or one the sidecar would silently drop fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use modelserver_contract::cli::{Command, PROXY, SERVE};
use modelserver_contract::{env, pod_env};
use modelserver_crds::load;
use modelserver_operator::render::{RenderConfig, names, render};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The token a test pod would read from the Secret.
const TOKEN: &str = "token-from-the-secret";
/// What the kubelet would put in the upstream credential's variable.
const UPSTREAM_CREDENTIAL: &str = "credential-from-the-secret";

/// What the downward API would put in the pod name's variable.
const POD_NAME: &str = "iris-5d9c7b6f4-x2x7q";
/// What the downward API would put in the pod namespace's variable.
const POD_NAMESPACE: &str = "ml";

/// The field a downward API variable reads.
fn field_path(source: &k8s_openapi::api::core::v1::EnvVarSource) -> &str {
    source
        .field_ref
        .as_ref()
        .map(|f| f.field_path.as_str())
        .unwrap_or_default()
}

/// The sidecar's container: the model container in managed mode, the native sidecar in proxy
/// mode.
fn sidecar_container(pod: &k8s_openapi::api::core::v1::PodSpec) -> Container {
    pod.containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .find(|c| {
            c.command
                .as_ref()
                .and_then(|cmd| cmd.get(1))
                .is_some_and(|sub| sub == SERVE || sub == PROXY)
        })
        .cloned()
        .expect("a container running the sidecar")
}

/// An empty list variable (CORS off) reaches the sidecar as one empty entry, which it ignores
/// (`CorsArgs::origins`); compare lists the way the sidecar reads them.
fn without_empty_list_entries(cli: &mut modelserver_contract::cli::Cli) {
    let cors = &mut cli.server_mut().unwrap().cors;
    for list in [
        &mut cors.allow_origins,
        &mut cors.allow_methods,
        &mut cors.allow_headers,
    ] {
        list.retain(|entry| !entry.trim().is_empty());
    }
}

#[test]
fn every_example_survives_render_and_the_sidecars_own_parser() {
    let mut modes = Vec::new();
    let mut examples = 0;
    let mut recycling = false;
    let mut tracing_examples = 0;
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let file = entry.unwrap().path().join("modelserver.yaml");
        if !file.is_file() {
            continue;
        }
        examples += 1;
        let object = load::from_yaml(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let children = render(&object, &RenderConfig::default()).unwrap();
        let pod = children.deployment.spec.unwrap().template.spec.unwrap();
        let container = sidecar_container(&pod);

        // What the kubelet runs: command then args; the environment, with the token resolved.
        let mut argv: Vec<String> = container.command.clone().unwrap()[1..].to_vec();
        if argv[0] == SERVE {
            argv.extend(container.args.clone().unwrap_or_default());
        }
        let vars: Vec<(String, String)> = container
            .env
            .iter()
            .flatten()
            .filter(|v| v.name.starts_with(env::PREFIX))
            .map(|v| {
                let value = match (&v.value, &v.value_from) {
                    (Some(value), None) => value.clone(),
                    (None, Some(_)) if v.name == env::AUTH_TOKEN => TOKEN.to_owned(),
                    (None, Some(_)) if v.name == env::UPSTREAM_CREDENTIAL => {
                        UPSTREAM_CREDENTIAL.to_owned()
                    }
                    (None, Some(source)) if v.name == env::POD_NAME => {
                        assert_eq!(field_path(source), "metadata.name");
                        POD_NAME.to_owned()
                    }
                    (None, Some(source)) if v.name == env::POD_NAMESPACE => {
                        assert_eq!(field_path(source), "metadata.namespace");
                        POD_NAMESPACE.to_owned()
                    }
                    other => panic!("{}: unexpected value {other:?}", v.name),
                };
                (v.name.clone(), value)
            })
            .collect();
        let mut parsed = pod_env::parse(&argv, &vars)
            .unwrap_or_else(|e| panic!("{}: {e}: {:?}", file.display(), e));
        without_empty_list_entries(&mut parsed);

        let mut expected = children.settings.sidecar.clone();
        if children.settings.auth_token.is_some() {
            expected.server_mut().unwrap().auth_token = Some(TOKEN.to_owned());
        }
        if children.settings.upstream_credential.is_some()
            && let Command::Proxy(proxy) = &mut expected.command
        {
            proxy.upstream_credential = Some(UPSTREAM_CREDENTIAL.to_owned());
        }
        let trace = &mut expected.server_mut().unwrap().trace;
        if trace.enabled() {
            tracing_examples += 1;
            assert_eq!(trace.name, object.metadata.name, "{}", file.display());
            trace.pod_name = Some(POD_NAME.to_owned());
            trace.pod_namespace = Some(POD_NAMESPACE.to_owned());
        }
        if let Command::Serve(serve) = &mut expected.command {
            serve
                .command
                .extend(object.spec.model.args.clone().unwrap_or_default());
        }
        without_empty_list_entries(&mut expected);
        assert_eq!(parsed, expected, "{}", file.display());

        // And against the spec itself, for the values every example shows.
        let server = parsed.server().unwrap();
        let spec_server = object.spec.server.clone().unwrap_or_default();
        assert_eq!(
            i32::from(server.port),
            spec_server.port.unwrap_or(8080),
            "{}",
            file.display()
        );
        if let Some(timeout) = &spec_server.request_timeout {
            assert_eq!(server.request_timeout, timeout.value());
        }
        assert!(server.request_timeout > Duration::ZERO);
        match (&parsed.command, &object.spec.model.upstream) {
            (Command::Proxy(proxy), Some(upstream)) => {
                assert_eq!(i32::from(proxy.upstream.port), upstream.port);
                assert_eq!(container.name, names::SIDECAR_CONTAINER);
            }
            (Command::Serve(serve), None) => {
                assert_eq!(
                    serve.command[..object.spec.model.command.as_ref().unwrap().len()],
                    object.spec.model.command.clone().unwrap()[..]
                );
                assert_eq!(
                    serve.socket_dir.as_deref(),
                    Some(Path::new(names::SOCKET_DIR))
                );
                assert_eq!(
                    serve.max_requests_per_worker,
                    spec_server
                        .max_requests_per_worker
                        .map(|m| u64::try_from(m).unwrap()),
                    "{}",
                    file.display()
                );
                assert_eq!(
                    serve.max_requests_jitter,
                    spec_server
                        .max_requests_jitter
                        .map_or(0, |j| u64::try_from(j).unwrap()),
                    "{}",
                    file.display()
                );
                assert_eq!(
                    serve.max_worker_memory,
                    spec_server.max_worker_memory.as_ref().map(|q| q.bytes()),
                    "{}",
                    file.display()
                );
                recycling |= serve.max_requests_per_worker.is_some();
            }
            other => panic!("{}: mode mismatch {other:?}", file.display()),
        }
        modes.push(parsed.subcommand());
    }
    assert!(examples >= 3, "{examples}");
    assert!(recycling, "an example recycles workers");
    assert!(tracing_examples > 0, "an example exports traces");
    assert!(
        modes.contains(&SERVE) && modes.contains(&PROXY),
        "{modes:?}"
    );
}
