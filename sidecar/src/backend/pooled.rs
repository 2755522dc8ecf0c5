//! The real [`Backend`]: each backend is a worker's Unix socket or TCP port, or the proxy-mode
//! TCP upstream. HTTP/1.1 requests and readiness probes go through the backends' own keep-alive
//! connections ([`http1`](super::http1)). gRPC calls take a pooled HTTP/2 client, addressed
//! `http://grpc-<i>/...`, whose connector maps that authority to the backend's gRPC address.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Uri};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use super::credential::UpstreamCredential;
use super::http1::Http1Pool;
use super::stream::{BackendAddr, BackendStream, connect};
use super::{Backend, BackendResult, BoxFuture};

/// Host prefix of the authorities of the backends' gRPC addresses (HTTP/2).
const GRPC_AUTHORITY_PREFIX: &str = "grpc-";
/// How long an idle HTTP/2 (gRPC) connection is kept: an HTTP/2 server announces its close
/// (GOAWAY) and names the last stream it took, so a request never races it unseen.
const GRPC_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The backends' gRPC addresses, indexed like the dispatcher's slots.
#[derive(Debug)]
struct GrpcTargets {
    addrs: Vec<BackendAddr>,
    /// Per backend, the authority of its current process: `grpc-<i>`, then `grpc-<i>-<epoch>`
    /// after each [`Backend::renew`], so the pool (keyed by authority) never hands a call a
    /// connection to a process that was there before. Made once per process, not per call.
    authorities: Vec<RwLock<(u64, Authority)>>,
}

/// The authority of backend `i`'s gRPC address in `epoch` (always valid: a prefix and digits).
fn authority(i: usize, epoch: u64) -> Authority {
    let text = if epoch == 0 {
        format!("{GRPC_AUTHORITY_PREFIX}{i}")
    } else {
        format!("{GRPC_AUTHORITY_PREFIX}{i}-{epoch}")
    };
    Authority::try_from(text).unwrap_or_else(|_| Authority::from_static("grpc-invalid"))
}

impl GrpcTargets {
    /// The gRPC address of each backend: its own, or its HTTP address when it has none.
    fn new(addrs: &[BackendAddr], grpc_addrs: Vec<Option<BackendAddr>>) -> Self {
        let mut grpc_addrs = grpc_addrs.into_iter();
        let addrs: Vec<BackendAddr> = addrs
            .iter()
            .map(|addr| grpc_addrs.next().flatten().unwrap_or_else(|| addr.clone()))
            .collect();
        Self {
            authorities: (0..addrs.len())
                .map(|i| RwLock::new((0, authority(i, 0))))
                .collect(),
            addrs,
        }
    }

    /// The absolute URI the gRPC client uses for `path_and_query` on backend `i`.
    fn uri(&self, i: usize, path_and_query: &PathAndQuery) -> Result<Uri, http::Error> {
        let authority = self.authorities.get(i).map_or_else(
            || Authority::from_static("grpc-invalid"),
            |a| a.read().unwrap_or_else(PoisonError::into_inner).1.clone(),
        );
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority)
            .path_and_query(path_and_query.clone())
            .build()
    }

    /// The backend a URI of [`GrpcTargets::uri`] names.
    fn index_of(&self, uri: &Uri) -> Option<usize> {
        let rest = uri.host()?.strip_prefix(GRPC_AUTHORITY_PREFIX)?;
        rest.split('-').next()?.parse().ok()
    }

    /// Moves backend `i` to a new epoch (see [`Self::authorities`]).
    fn renew(&self, i: usize) {
        if let Some(current) = self.authorities.get(i) {
            let mut current = current.write().unwrap_or_else(PoisonError::into_inner);
            let epoch = current.0.wrapping_add(1);
            *current = (epoch, authority(i, epoch));
        }
    }
}

impl Connection for BackendStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Connects `http://grpc-<i>` to backend `i`'s gRPC address.
#[derive(Clone)]
struct GrpcConnector {
    targets: Arc<GrpcTargets>,
}

impl tower::Service<Uri> for GrpcConnector {
    type Response = TokioIo<BackendStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let addr = self
            .targets
            .index_of(&uri)
            .and_then(|i| self.targets.addrs.get(i).cloned());
        Box::pin(async move {
            let Some(addr) = addr else {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no backend for {uri}"),
                ));
            };
            Ok(TokioIo::new(connect(&addr).await?))
        })
    }
}

/// The backends at these addresses: their own HTTP/1.1 keep-alive connections for requests and
/// probes, a pooled HTTP/2 (prior knowledge) client for gRPC calls.
pub struct PooledBackends {
    http: Http1Pool,
    grpc_targets: Arc<GrpcTargets>,
    grpc_client: Client<GrpcConnector, Body>,
    credential: Option<Arc<UpstreamCredential>>,
}

impl PooledBackends {
    /// Connections to these addresses (backend `i` is `addrs[i]`) and the backends' gRPC
    /// addresses (`None`: gRPC goes to the backend's HTTP address, over HTTP/2).
    pub fn new(addrs: Vec<BackendAddr>, grpc_addrs: Vec<Option<BackendAddr>>) -> Self {
        let grpc_targets = Arc::new(GrpcTargets::new(&addrs, grpc_addrs));
        let grpc_client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(GRPC_POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(true)
            .build(GrpcConnector {
                targets: grpc_targets.clone(),
            });
        Self {
            http: Http1Pool::new(addrs),
            grpc_targets,
            grpc_client,
            credential: None,
        }
    }

    /// Adds `credential` to every request and probe, and removes its header from responses.
    pub fn with_credential(mut self, credential: Option<UpstreamCredential>) -> Self {
        self.credential = credential.map(Arc::new);
        self
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.http.len()
    }

    /// A gRPC call to backend `i` through the HTTP/2 client.
    fn send_grpc(&self, i: usize, mut request: Request<Body>) -> BoxFuture<BackendResult> {
        let path = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        match self.grpc_targets.uri(i, &path) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(e) => return Box::pin(std::future::ready(Err(e.into()))),
        }
        let credential = self.credential.clone();
        if let Some(credential) = &credential {
            credential.add_to(request.headers_mut());
        }
        let pending = self.grpc_client.request(request);
        Box::pin(async move {
            let mut response = pending.await?;
            if let Some(credential) = credential {
                credential.strip_from(response.headers_mut());
            }
            Ok(response.map(Body::new))
        })
    }
}

impl Backend for PooledBackends {
    fn send(&self, i: usize, mut request: Request<Body>) -> BoxFuture<BackendResult> {
        if request.version() == http::Version::HTTP_2 {
            return self.send_grpc(i, request);
        }
        let credential = self.credential.clone();
        if let Some(credential) = &credential {
            credential.add_to(request.headers_mut());
        }
        let http = self.http.clone();
        Box::pin(async move {
            let mut response = http.send(i, request).await?;
            if let Some(credential) = credential {
                credential.strip_from(response.headers_mut());
            }
            Ok(response.map(Body::new))
        })
    }

    fn probe(&self, i: usize, path: PathAndQuery, timeout: Duration) -> BoxFuture<bool> {
        let http = self.http.clone();
        let credential = self.credential.clone();
        Box::pin(async move {
            // Sent with the pool's default `Host`.
            let mut request = Request::new(Body::empty());
            *request.uri_mut() = Uri::from(path);
            if let Some(credential) = &credential {
                credential.add_to(request.headers_mut());
            }
            let attempt = async {
                let response = http.send(i, request).await.ok()?;
                let ok = response.status() == http::StatusCode::OK;
                // Read the (small) body so the connection goes back to the pool.
                response.into_body().collect().await.ok()?;
                Some(ok)
            };
            matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
        })
    }

    fn address(&self, i: usize) -> Option<String> {
        self.http.addr(i).map(ToString::to_string)
    }

    fn renew(&self, i: usize) {
        self.http.renew(i);
        self.grpc_targets.renew(i);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn grpc_authorities_map_back_to_indexes() {
        let http = vec![
            BackendAddr::Unix("/tmp/a.sock".into()),
            BackendAddr::Unix("/tmp/b.sock".into()),
        ];
        let grpc = BackendAddr::Unix("/tmp/b-grpc.sock".into());
        let t = GrpcTargets::new(&http, vec![None, Some(grpc.clone())]);
        let uri = t.uri(1, &PathAndQuery::from_static("/pkg.S/M")).unwrap();
        assert_eq!(uri.to_string(), "http://grpc-1/pkg.S/M");
        assert_eq!(t.index_of(&uri), Some(1));
        // Without a gRPC address, gRPC goes to the HTTP address.
        assert_eq!(t.addrs, vec![http[0].clone(), grpc]);
        assert_eq!(t.index_of(&Uri::from_static("http://elsewhere/")), None);
        t.renew(1);
        let renewed = t.uri(1, &PathAndQuery::from_static("/")).unwrap();
        assert_eq!(renewed.to_string(), "http://grpc-1-1/");
        assert_eq!(
            t.index_of(&renewed),
            Some(1),
            "a new pool key, the same address"
        );
        assert_eq!(
            t.uri(0, &PathAndQuery::from_static("/"))
                .unwrap()
                .to_string(),
            "http://grpc-0/"
        );
    }
}
