//! The contract between the operator and the sidecar, end to end without a cluster: the model
//! container `render` produces for the iris example is started with the real static sidecar
//! binary and the real iris worker, with exactly the rendered command, arguments and
//! environment. Only what a pod provides differently here is substituted: paths inside the
//! image (`/app`, the installed binary, the socket emptyDir) and the two ports (the tests run in
//! parallel, so they take free ones), plus MODELSERVER_BIND=127.0.0.1. Then the rendered
//! probes are followed (named port, path) and the rendered preStop command drains it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use modelserver_crds::load;
use modelserver_operator::render::{RenderConfig, names, render};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The static release sidecar, as the init container installs it (`make sidecar-static`).
fn sidecar_binary() -> PathBuf {
    let path = std::env::var_os("MODELSERVER_SIDECAR_STATIC").unwrap_or_else(|| {
        panic!(
            "MODELSERVER_SIDECAR_STATIC is unset: run `make test` (it builds the static sidecar)"
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{} is missing: run `make sidecar-static`",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 exchange; returns (status, body).
fn http(method: &str, port: u16, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// Kills the sidecar (and so its workers' supervisor) if the test fails half-way.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The port a probe targets, resolving a named port through the container's ports.
fn probe_target(probe: &Probe, container: &Container) -> (String, i32) {
    let get = probe.http_get.as_ref().expect("an httpGet probe");
    let port = match &get.port {
        IntOrString::Int(port) => *port,
        IntOrString::String(name) => {
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("probe port {name} is not a container port"))
                .container_port
        }
    };
    (get.path.clone().expect("probe path"), port)
}

#[test]
fn the_rendered_iris_container_runs_with_the_real_sidecar_and_follows_its_probes_and_pre_stop() {
    let sidecar = sidecar_binary();
    let text = std::fs::read_to_string(repo().join("examples/iris/modelserver.yaml")).unwrap();
    let object = load::from_yaml(&text).unwrap();
    let children = render(&object, &RenderConfig::default()).unwrap();
    let pod = children.deployment.spec.unwrap().template.spec.unwrap();
    let container = pod
        .containers
        .iter()
        .find(|c| c.name == names::MODEL_CONTAINER)
        .unwrap()
        .clone();

    let app = repo().join("examples/iris").canonicalize().unwrap();
    let sockets = tempfile::tempdir().unwrap();
    let (http_port, admin_port) = (free_port(), free_port());
    let rendered_ports: BTreeMap<i32, u16> = container
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let local = if p.name.as_deref() == Some(names::ADMIN_PORT_NAME) {
                admin_port
            } else {
                http_port
            };
            (p.container_port, local)
        })
        .collect();
    let localize = |value: &str| -> String {
        if value == names::SIDECAR_BINARY {
            return sidecar.display().to_string();
        }
        // Paths inside the image (not, say, the origin https://app.example.com).
        match value.strip_prefix("/app") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                format!("{}{rest}", app.display())
            }
            _ => value.to_owned(),
        }
    };

    // The rendered command + args: sidecar serve -- python3 /app/worker.py --model /app/model.json
    let command = container.command.clone().unwrap();
    assert_eq!(&command[..3], [names::SIDECAR_BINARY, "serve", "--"]);
    let mut argv: Vec<String> = command.iter().map(|a| localize(a)).collect();
    argv.extend(container.args.iter().flatten().map(|a| localize(a)));

    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for var in container.env.iter().flatten() {
        let value = var.value.clone().expect("iris renders no secret env");
        let value = match var.name.as_str() {
            "MODELSERVER_PORT" => rendered_ports[&value.parse::<i32>().unwrap()].to_string(),
            "MODELSERVER_ADMIN_PORT" => rendered_ports[&value.parse::<i32>().unwrap()].to_string(),
            "MODELSERVER_SOCKET_DIR" => sockets.path().display().to_string(),
            _ => localize(&value),
        };
        env.insert(var.name.clone(), value);
    }
    // Settings the sidecar must receive from the rendered env, as the example states them.
    assert_eq!(env["MODELSERVER_WORKERS"], "2");
    assert_eq!(env["MODELSERVER_MAX_UPLOAD_SIZE"], "10Mi");
    assert_eq!(env["MODELSERVER_LOG_FORMAT"], "json");
    env.insert("MODELSERVER_BIND".into(), "127.0.0.1".into());

    let working_dir = localize(container.working_dir.as_deref().unwrap());
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&env)
        .current_dir(&working_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut guard = Guard(Some(child));

    // The startup probe: its path on its (named) port answers 200 once the workers loaded,
    // within the rendered budget.
    let startup = container.startup_probe.as_ref().unwrap();
    let (path, port) = probe_target(startup, &container);
    let budget = Duration::from_secs(
        u64::try_from(startup.period_seconds.unwrap() * startup.failure_threshold.unwrap())
            .unwrap(),
    );
    let started = Instant::now();
    loop {
        if let Ok((200, _)) = http("GET", rendered_ports[&port], &path, "") {
            break;
        }
        assert!(
            started.elapsed() < budget,
            "{path} not 200 within the startup budget {budget:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let (path, port) = probe_target(probe.as_ref().unwrap(), &container);
        assert_eq!(
            http("GET", rendered_ports[&port], &path, "").unwrap().0,
            200,
            "{path}"
        );
    }

    // The Service's target: the port named http serves predictions.
    let (status, body) = http(
        "POST",
        http_port,
        "/predict",
        r#"{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}"#,
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("setosa") && body.contains("virginica"),
        "{body}"
    );

    // The preStop hook: the rendered exec command, in the container's environment.
    let pre_stop = container
        .lifecycle
        .as_ref()
        .unwrap()
        .pre_stop
        .as_ref()
        .unwrap();
    let hook: Vec<String> = pre_stop
        .exec
        .as_ref()
        .unwrap()
        .command
        .clone()
        .unwrap()
        .iter()
        .map(|a| localize(a))
        .collect();
    let drained = Command::new(&hook[0])
        .args(&hook[1..])
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    assert!(
        drained.status.success(),
        "preStop failed: {}",
        String::from_utf8_lossy(&drained.stderr)
    );
    // After the drain the sidecar stops its workers and exits 0, inside the grace period.
    let grace =
        Duration::from_secs(u64::try_from(pod.termination_grace_period_seconds.unwrap()).unwrap());
    let mut child = guard.0.take().unwrap();
    let deadline = Instant::now() + grace;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar did not exit within the grace period {grace:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "sidecar exit: {status:?}");
}
