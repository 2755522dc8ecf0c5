//! Whether the cluster serves an API whose CRDs are optional: the Gateway API (for `spec.route`)
//! and KEDA (for concurrency autoscaling). The operator asks API discovery at start and, while the
//! answer is no, again every [`RECHECK`]: it logs one warning, keeps serving every ModelServer,
//! and reports the missing API on those that need it (`GatewayAPIMissing`, `KEDAMissing`). Once
//! the API appears, its watches start and every ModelServer is reconciled again; no restart is
//! needed.

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Client;
use tokio::sync::watch;

use crate::render::{gateway, keda};

/// An optional API: its group/version and the resources the operator uses.
#[derive(Debug, Clone, Copy)]
pub struct ApiGroup {
    /// `group/version`, as discovery names it.
    pub group_version: &'static str,
    /// The resources (plurals) the operator needs from it.
    pub resources: &'static [&'static str],
    /// What a ModelServer needs it for, for the log.
    pub needed_for: &'static str,
}

/// The Gateway API, for `spec.route`.
pub const GATEWAY_API: ApiGroup = ApiGroup {
    group_version: gateway::GROUP_VERSION,
    resources: &[gateway::HTTP_ROUTES, gateway::GATEWAYS],
    needed_for: "spec.route (a Gateway API HTTPRoute)",
};

/// KEDA, for concurrency autoscaling.
pub const KEDA: ApiGroup = ApiGroup {
    group_version: keda::GROUP_VERSION,
    resources: &[keda::SCALED_OBJECTS],
    needed_for: "spec.autoscaling.metric concurrency (a KEDA ScaledObject)",
};

/// How often discovery is asked again while an optional API is missing.
pub const RECHECK: Duration = Duration::from_secs(60);

/// What the operator knows about an optional API: a cheap, cloneable view of the discovery
/// task's answer.
#[derive(Debug, Clone)]
pub struct OptionalApi {
    present: watch::Receiver<bool>,
}

impl OptionalApi {
    /// A fixed answer (for tests, and for a cluster known to have, or lack, the API).
    pub fn fixed(present: bool) -> Self {
        let (sender, receiver) = watch::channel(present);
        // Keep the value readable after the sender is gone.
        drop(sender);
        Self { present: receiver }
    }

    /// Whether the cluster serves the API now.
    pub fn present(&self) -> bool {
        *self.present.borrow()
    }

    /// Waits until the cluster serves the API (forever if it never does).
    pub async fn wait(&self) {
        let mut present = self.present.clone();
        if present.wait_for(|p| *p).await.is_err() {
            // The discovery task ended without finding the API: it will not appear.
            std::future::pending::<()>().await;
        }
    }

    /// A stream that starts `make()` once the API is served.
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

    /// A stream with one item when the API appears after start-up (for
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
pub async fn discover(client: Client, api: ApiGroup) -> OptionalApi {
    let (sender, receiver) = watch::channel(served(&client, api).await);
    if *receiver.borrow() {
        tracing::info!(
            api = api.group_version,
            "served: {} is available",
            api.needed_for
        );
    } else {
        tracing::warn!(
            api = api.group_version,
            recheck = ?RECHECK,
            "not served (its CRDs are not installed): ModelServers that ask for {} report it in \
             their status until it is; everything else works",
            api.needed_for
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECHECK).await;
                if served(&client, api).await {
                    tracing::info!(api = api.group_version, "appeared: starting its watches");
                    // Nobody listening any more is fine: the operator is stopping.
                    let _ = sender.send(true);
                    break;
                }
            }
        });
    }
    OptionalApi { present: receiver }
}

/// Whether discovery lists every resource of `api`. An error other than "not found" counts as
/// not served this time (it is asked again).
async fn served(client: &Client, api: ApiGroup) -> bool {
    match client.list_api_group_resources(api.group_version).await {
        Ok(list) => api
            .resources
            .iter()
            .all(|kind| list.resources.iter().any(|r| r.name == *kind)),
        Err(kube::Error::Api(status)) if status.code == 404 => false,
        Err(error) => {
            tracing::warn!(%error, api = api.group_version, "asking discovery");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fixed_answer_holds_and_streams_follow_it() {
        assert!(OptionalApi::fixed(true).present());
        assert!(!OptionalApi::fixed(false).present());
        let items: Vec<i32> = OptionalApi::fixed(true)
            .once_present(|| futures::stream::iter([1, 2]))
            .collect()
            .await;
        assert_eq!(items, [1, 2]);
        // Present from the start: no "appeared" trigger.
        let appeared: Vec<()> = OptionalApi::fixed(true).appeared().collect().await;
        assert!(appeared.is_empty());
    }

    #[tokio::test]
    async fn the_api_appearing_later_starts_the_stream_and_triggers_once() {
        let (sender, receiver) = watch::channel(false);
        let api = OptionalApi { present: receiver };
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
