//! A trivial worker for the benchmark: answers every request on `$MODELSERVER_SOCKET` with a
//! small JSON body at once, on one thread, so the benchmark measures the sidecar and not a model.
//! `make bench-sidecar` compares requests through the sidecar with requests straight to it.

use std::convert::Infallible;
use std::path::PathBuf;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

const BODY: &[u8] = br#"{"ok":true}"#;

async fn answer(_request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let socket = PathBuf::from(
        std::env::var_os("MODELSERVER_SOCKET").ok_or("MODELSERVER_SOCKET is not set")?,
    );
    let _ = std::fs::remove_file(&socket);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = UnixListener::bind(&socket)?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}
