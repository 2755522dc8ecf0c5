//! `modelserver-operator run`: the metrics endpoint, optional leader election, and the
//! controller, stopped together on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::client::ClientBuilder;
use kube::{Client, Config};
use kube_lease_manager::LeaseManagerBuilder;
use modelserver_process::signals::Signals;
use tokio_util::sync::CancellationToken;

use crate::api_requests::CountRequestsLayer;
use crate::controller::{self, ControllerConfig};
use crate::http::{self, Health};
use crate::metrics::Metrics;

/// Name of the leader-election Lease.
pub const LEASE_NAME: &str = "modelserver-operator";

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No kubeconfig or in-cluster configuration.
    #[error("finding the cluster: {0}")]
    Config(kube::config::InferConfigError),
    /// The client could not be built from the configuration.
    #[error("connecting to the cluster: {0}")]
    Client(kube::Error),
    /// The metrics registry refused a metric.
    #[error("creating metrics: {0}")]
    Metrics(prometheus::Error),
    /// The metrics endpoint could not serve.
    #[error("serving metrics on {addr}: {cause}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The error.
        cause: std::io::Error,
    },
    /// Leader election failed to start.
    #[error("leader election: {0}")]
    Lease(kube_lease_manager::LeaseManagerError),
    /// Another replica took the lease; this one stops so only one reconciles.
    #[error("lost the leader lease {0}; exiting so that only the new leader reconciles")]
    LeadershipLost(String),
}

/// Leader-election settings.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Namespace of the Lease.
    pub namespace: String,
    /// This replica's identity.
    pub identity: String,
    /// Lease duration.
    pub lease_duration: Duration,
}

/// Runs the operator until a signal (or, with leader election, a lost lease).
pub async fn run(
    controller_config: ControllerConfig,
    metrics_addr: SocketAddr,
    leader_election: Option<LeaderElection>,
) -> Result<(), RunError> {
    let config = Config::infer().await.map_err(RunError::Config)?;
    let metrics = Metrics::new()?;
    // The controller's requests are counted on their way out; the lease's renewals are not (the
    // write counter reads 0 at rest, with or without leader election).
    let client = ClientBuilder::try_from(config.clone())
        .map_err(RunError::Client)?
        .with_layer(&CountRequestsLayer::new(metrics.clone()))
        .build();
    let lease_client = Client::try_from(config).map_err(RunError::Client)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));

    let ready = Arc::new(AtomicBool::new(false));
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(metrics_addr)
        .await
        .map_err(|source| RunError::Http {
            addr: metrics_addr,
            cause: source,
        })?;
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, http::router(health))
            .with_graceful_shutdown(server_shutdown.cancelled_owned())
            .await
    });
    tracing::info!(addr = %metrics_addr, "serving /metrics, /healthz and /readyz");

    let result = match leader_election {
        None => {
            ready.store(true, Ordering::Release);
            controller::run(
                client,
                controller_config,
                metrics,
                shutdown.clone().cancelled_owned(),
            )
            .await;
            Ok(())
        }
        Some(election) => {
            lead(
                client,
                lease_client,
                controller_config,
                metrics,
                election,
                &ready,
                &shutdown,
            )
            .await
        }
    };
    shutdown.cancel();
    match server.await {
        Ok(Err(source)) => {
            return Err(RunError::Http {
                addr: metrics_addr,
                cause: source,
            });
        }
        Err(error) => tracing::warn!(%error, "metrics server task"),
        Ok(Ok(())) => {}
    }
    result
}

/// Waits for the lease, reconciles while holding it, and releases it on shutdown.
async fn lead(
    client: Client,
    lease_client: Client,
    controller_config: ControllerConfig,
    metrics: Metrics,
    election: LeaderElection,
    ready: &AtomicBool,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    let seconds = election.lease_duration.as_secs().max(2);
    let manager = LeaseManagerBuilder::new(lease_client, LEASE_NAME)
        .with_namespace(election.namespace.clone())
        .with_identity(election.identity.clone())
        .with_duration(seconds)
        .with_grace((seconds / 3).max(1))
        .build()
        .await?;
    let (mut leading, lease_task) = manager.watch().await;
    // A standby replica is healthy and ready: it is doing its job by waiting.
    ready.store(true, Ordering::Release);
    tracing::info!(identity = %election.identity, lease = LEASE_NAME, "waiting for the leader lease");
    while !*leading.borrow_and_update() {
        tokio::select! {
            changed = leading.changed() => {
                if changed.is_err() {
                    return Err(RunError::LeadershipLost(LEASE_NAME.to_owned()));
                }
            }
            () = shutdown.cancelled() => {
                drop(leading);
                let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
                return Ok(());
            }
        }
    }
    tracing::info!(identity = %election.identity, "acquired the leader lease; reconciling");

    let stop_controller = shutdown.child_token();
    let lost = Arc::new(AtomicBool::new(false));
    let watch_stop = stop_controller.clone();
    let watch_lost = lost.clone();
    let mut watch_leading = leading.clone();
    tokio::spawn(async move {
        loop {
            if watch_leading.changed().await.is_err() || !*watch_leading.borrow() {
                watch_lost.store(true, Ordering::Release);
                watch_stop.cancel();
                return;
            }
        }
    });
    controller::run(
        client,
        controller_config,
        metrics,
        stop_controller.cancelled_owned(),
    )
    .await;
    // Closing the channel makes the lease task release the lease, so a standby takes over now
    // rather than after the lease expires.
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the leader lease"),
        Ok(Ok(Err(error))) => tracing::warn!(%error, "releasing the leader lease"),
        Ok(Err(error)) => tracing::warn!(%error, "lease task"),
        Err(_) => tracing::warn!("releasing the leader lease timed out"),
    }
    if lost.load(Ordering::Acquire) && !shutdown.is_cancelled() {
        return Err(RunError::LeadershipLost(LEASE_NAME.to_owned()));
    }
    Ok(())
}

/// Cancels `token` on SIGTERM or SIGINT.
async fn cancel_on_signal(token: CancellationToken) {
    match Signals::install() {
        Ok(mut signals) => {
            let name = signals.next().await;
            tracing::info!(signal = name, "shutting down");
        }
        Err(error) => {
            tracing::warn!(%error, "cannot listen for signals; only a lost lease stops the operator");
            std::future::pending::<()>().await;
        }
    }
    token.cancel();
}

// Not `#[from]`: that would also return the cause from `source()`, which the message already
// prints, and error chains would print it twice.
impl From<prometheus::Error> for RunError {
    fn from(cause: prometheus::Error) -> Self {
        Self::Metrics(cause)
    }
}

// Not `#[from]`: that would also return the cause from `source()`, which the message already
// prints, and error chains would print it twice.
impl From<kube_lease_manager::LeaseManagerError> for RunError {
    fn from(cause: kube_lease_manager::LeaseManagerError) -> Self {
        Self::Lease(cause)
    }
}
