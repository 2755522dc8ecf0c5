//! Whether the cluster serves the Gateway API (its CRDs are optional). The operator asks API
//! discovery at start and, while the answer is no, again every [`RECHECK`]: it logs one warning,
//! keeps serving every ModelServer, and reports `RouteAccepted=False` (reason
//! `GatewayAPIMissing`) on those with `spec.route`. Once the API appears, the HTTPRoute and
//! Gateway watches start and every ModelServer is reconciled again; no restart is needed.

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Client;
use tokio::sync::watch;

use crate::render::gateway::{GATEWAYS, GROUP_VERSION, HTTP_ROUTES};

/// How often discovery is asked again while the Gateway API is missing.
pub const RECHECK: Duration = Duration::from_secs(60);

/// What the operator knows about the Gateway API: a cheap, cloneable view of the discovery
/// task's answer.
#[derive(Debug, Clone)]
pub struct GatewayApi {
    present: watch::Receiver<bool>,
}

impl GatewayApi {
    /// A fixed answer (for tests, and for a cluster known to have, or lack, the API).
    pub fn fixed(present: bool) -> Self {
        let (sender, receiver) = watch::channel(present);
        // Keep the value readable after the sender is gone.
        drop(sender);
        Self { present: receiver }
    }

    /// Whether the cluster serves HTTPRoutes and Gateways now.
    pub fn present(&self) -> bool {
        *self.present.borrow()
    }

    /// Waits until the cluster serves the Gateway API (forever if it never does).
    pub async fn wait(&self) {
        let mut present = self.present.clone();
        if present.wait_for(|p| *p).await.is_err() {
            // The discovery task ended without finding the API: it will not appear.
            std::future::pending::<()>().await;
        }
    }

    /// A stream that starts `make()` once the Gateway API is served.
    pub fn once_present<S, F>(&self, make: F) -> impl Stream<Item = S::Item> + Send + 'static
    where
        S: Stream + Send + 'static,
        F: FnOnce() -> S + Send + 'static,
    {
        let api = self.clone();
        futures::stream::once(async move {
            api.wait().await;
            make()
        })
        .flatten()
    }

    /// A stream with one item when the Gateway API appears after start-up (for
    /// `Controller::reconcile_all_on`); none when it was there from the start.
    pub fn appeared(&self) -> impl Stream<Item = ()> + Send + 'static {
        let api = self.clone();
        let initially = api.present();
        futures::stream::once(async move {
            api.wait().await;
        })
        .filter(move |()| futures::future::ready(!initially))
    }
}

/// Asks discovery now and starts the task that asks again while the API is missing.
pub async fn discover(client: Client) -> GatewayApi {
    let (sender, receiver) = watch::channel(served(&client).await);
    if *receiver.borrow() {
        tracing::info!(
            api = GROUP_VERSION,
            "the Gateway API is served: spec.route is available"
        );
    } else {
        tracing::warn!(
            api = GROUP_VERSION,
            recheck = ?RECHECK,
            "the Gateway API is not served (its CRDs are not installed): ModelServers with spec.route \
             report RouteAccepted=False until it is; everything else works"
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECHECK).await;
                if served(&client).await {
                    tracing::info!(
                        api = GROUP_VERSION,
                        "the Gateway API appeared: starting its watches"
                    );
                    // Nobody listening any more is fine: the operator is stopping.
                    let _ = sender.send(true);
                    break;
                }
            }
        });
    }
    GatewayApi { present: receiver }
}

/// Whether discovery lists HTTPRoutes and Gateways in the Gateway API's v1. An error other than
/// "not found" counts as not served this time (it is asked again).
async fn served(client: &Client) -> bool {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) => [HTTP_ROUTES, GATEWAYS]
            .iter()
            .all(|kind| list.resources.iter().any(|r| r.name == *kind)),
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(error) => {
            tracing::warn!(%error, api = GROUP_VERSION, "asking discovery for the Gateway API");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fixed_answer_holds_and_streams_follow_it() {
        assert!(GatewayApi::fixed(true).present());
        assert!(!GatewayApi::fixed(false).present());
        let items: Vec<i32> = GatewayApi::fixed(true)
            .once_present(|| futures::stream::iter([1, 2]))
            .collect()
            .await;
        assert_eq!(items, [1, 2]);
        // Present from the start: no "appeared" trigger.
        let appeared: Vec<()> = GatewayApi::fixed(true).appeared().collect().await;
        assert!(appeared.is_empty());
    }

    #[tokio::test]
    async fn the_api_appearing_later_starts_the_stream_and_triggers_once() {
        let (sender, receiver) = watch::channel(false);
        let api = GatewayApi { present: receiver };
        let started = tokio::spawn(
            api.once_present(|| futures::stream::iter([7]))
                .collect::<Vec<_>>(),
        );
        let appeared = tokio::spawn(api.appeared().collect::<Vec<()>>());
        tokio::task::yield_now().await;
        assert!(!started.is_finished());
        sender.send(true).expect("receivers alive");
        assert_eq!(started.await.expect("joins"), [7]);
        assert_eq!(appeared.await.expect("joins").len(), 1);
    }
}
