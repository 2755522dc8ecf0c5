//! Proxy mode (`proxy`): one TCP upstream that runs itself, behind the front door, with its
//! readiness followed by polling its readiness path.

use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{FrontDoor, dispatcher, readiness_path};
use crate::backend::Backend;
use crate::backend::credential::UpstreamCredential;
use crate::backend::pooled::PooledBackends;
use crate::backend::stream::BackendAddr;
use crate::config::ProxyArgs;
use crate::dispatch::Dispatcher;
use crate::errors::SidecarError;
use crate::shutdown::Model;
use crate::state::Mode;
use crate::workers::supervisor::PROBE_TIMEOUT;

/// Upstream readiness poll interval while not ready.
const UPSTREAM_POLL_NOT_READY: Duration = Duration::from_millis(200);
/// Upstream readiness poll interval while ready.
const UPSTREAM_POLL_READY: Duration = Duration::from_secs(1);

/// Runs proxy mode (`proxy`) until drained.
pub async fn proxy_mode(args: ProxyArgs) -> Result<(), SidecarError> {
    let server = &args.server;
    let upstream = args.upstream.clone();
    let credential = UpstreamCredential::new(
        args.upstream_credential.as_deref(),
        args.upstream_credential_header.as_ref(),
    )?;
    let backend = Arc::new(
        PooledBackends::new(
            vec![BackendAddr::Tcp(upstream.clone())],
            vec![args.upstream_grpc.clone().map(BackendAddr::Tcp)],
        )
        .with_credential(credential),
    );
    let per_backend = usize::from(server.workers) * usize::from(server.executor_threads);
    let dispatcher = dispatcher(server, 1, per_backend);
    let front = FrontDoor::start(
        Mode::Proxy,
        server,
        backend.clone(),
        dispatcher.clone(),
        per_backend,
        None,
    )
    .await?;
    info!(
        upstream = %upstream.target(),
        upstream_grpc = args.upstream_grpc.as_ref().map(|g| g.target()),
        "proxying to upstream"
    );
    let watcher = watch_upstream(backend, dispatcher, readiness_path(&server.readiness_path));
    front.run(Model::Proxy(watcher), Duration::ZERO).await
}

/// Polls the upstream's readiness path and puts it in rotation (or takes it out) accordingly:
/// the one owner of the upstream's readiness.
fn watch_upstream(
    backend: Arc<dyn Backend>,
    dispatcher: Dispatcher,
    path: PathAndQuery,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut was_ready = false;
        loop {
            let ready = backend.probe(0, path.clone(), PROBE_TIMEOUT).await;
            if ready != was_ready {
                if ready {
                    info!("upstream ready");
                } else {
                    warn!("upstream not ready");
                }
                was_ready = ready;
            }
            dispatcher.set_ready(0, ready);
            let pause = if ready {
                UPSTREAM_POLL_READY
            } else {
                UPSTREAM_POLL_NOT_READY
            };
            tokio::time::sleep(pause).await;
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::time::Instant;

    use super::*;
    use crate::backend::fake::FakeBackend;

    async fn until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn the_upstream_is_in_rotation_while_its_readiness_probe_answers() {
        let fake = Arc::new(FakeBackend::ok(1));
        fake.set_probe(0, false);
        let dispatcher = Dispatcher::new(1, 1, 1);
        let watcher = watch_upstream(
            fake.clone(),
            dispatcher.clone(),
            PathAndQuery::from_static("/ready"),
        );
        let in_rotation = || dispatcher.snapshot().all_ready();
        assert!(!in_rotation());
        fake.set_probe(0, true);
        until("the upstream to enter rotation", in_rotation).await;
        assert!(dispatcher.snapshot().started);
        fake.set_probe(0, false);
        until("the upstream to leave rotation", || !in_rotation()).await;
        watcher.abort();
    }
}
