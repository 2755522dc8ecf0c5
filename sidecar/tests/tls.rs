//! TLS on the public port with the real binary: a certificate made in the test, HTTP/2 and
//! HTTP/1.1 chosen by ALPN, a renewed certificate (the files rewritten, as the kubelet does for
//! a mounted Secret) served to new connections without dropping the open ones, plain HTTP not
//! served, and unusable files refused at start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nix::sys::signal::Signal;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `localhost`: (certificate PEM, key PEM, certificate DER).
fn certificate() -> (String, String, CertificateDer<'static>) {
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (
        pair.cert.pem(),
        pair.signing_key.serialize_pem(),
        pair.cert.der().clone(),
    )
}

fn install(dir: &Path, cert: &str, key: &str) {
    // Like the kubelet's atomic update of a Secret volume: write aside, then rename.
    for (name, text) in [("tls.key", key), ("tls.crt", cert)] {
        let aside = dir.join(format!(".{name}.new"));
        std::fs::write(&aside, text).unwrap();
        std::fs::rename(&aside, dir.join(name)).unwrap();
    }
}

/// A TLS connection to `addr` that trusts only `root`, offering `alpn`.
async fn connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn get(path: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(format!("https://localhost{path}"))
        .header(http::header::HOST, "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http2_and_http1_by_alpn_and_a_renewed_certificate_drops_no_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_a, key_a, der_a) = certificate();
    install(dir.path(), &cert_a, &key_a);
    let cert_file = dir.path().join("tls.crt").to_string_lossy().into_owned();
    let key_file = dir.path().join("tls.key").to_string_lossy().into_owned();
    let mut sc = Sidecar::serve(
        &[
            "--tls-cert-file",
            &cert_file,
            "--tls-key-file",
            &key_file,
            "--drain-delay",
            "0s",
        ],
        &[],
    );
    let c = client();
    sc.wait_ready(&c).await;

    // HTTP/2 by ALPN.
    let tls = connect(sc.public, &der_a, b"h2").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let r = h2.send_request(get("/v2/health/ready")).await.unwrap();
    assert_eq!(
        (r.status(), r.version()),
        (http::StatusCode::OK, http::Version::HTTP_2)
    );

    // HTTP/1.1 by ALPN, kept open across the renewal.
    let tls = connect(sc.public, &der_a, b"http/1.1").await.unwrap();
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let predict = || {
        http::Request::post("/predict")
            .header(http::header::HOST, "localhost")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from_static(IRIS_ROWS.as_bytes())))
            .unwrap()
    };
    let r = h1.send_request(predict()).await.unwrap();
    assert_eq!(
        (r.status(), r.version()),
        (http::StatusCode::OK, http::Version::HTTP_11)
    );
    let body = r.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("setosa"));

    // Plain HTTP is not served on a TLS port.
    assert!(
        c.get(sc.url("/v2/health/ready")).send().await.is_err(),
        "plain HTTP answered on the TLS port"
    );

    // Renewal: new connections get the new certificate, open ones keep working.
    let (cert_b, key_b, der_b) = certificate();
    install(dir.path(), &cert_b, &key_b);
    wait_for("the renewed certificate to be served", DEADLINE, || async {
        connect(sc.public, &der_b, b"h2").await.is_ok()
    })
    .await;
    assert!(
        connect(sc.public, &der_a, b"h2").await.is_err(),
        "the old certificate is still served to new connections"
    );
    assert!(sc.logged("TLS certificate reloaded"));
    let r = h1.send_request(predict()).await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "the connection opened before the renewal still serves"
    );
    let r = h2.send_request(get("/v2/health/ready")).await.unwrap();
    assert_eq!(r.status(), 200);

    // A broken update (a key that does not match) keeps the current certificate.
    let (_, key_c, _) = certificate();
    install(dir.path(), &cert_b, &key_c);
    wait_for("the broken update to be refused", DEADLINE, || async {
        sc.logged("TLS certificate not reloaded")
    })
    .await;
    assert!(connect(sc.public, &der_b, b"h2").await.is_ok());

    sc.signal(Signal::SIGTERM);
    assert_eq!(
        sc.wait_exit(DEADLINE).code(),
        Some(0),
        "log:\n{}",
        sc.logs()
    );
}

#[test]
fn unusable_certificate_files_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir
        .path()
        .join("missing.crt")
        .to_string_lossy()
        .into_owned();
    let worker = worker_py();
    let out = run_to_end(
        &[
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--admin-port",
            "0",
            "--tls-cert-file",
            &missing,
            "--tls-key-file",
            &missing,
            "--",
            "python3",
            &worker,
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing.crt"), "{stderr}");
    // A certificate without its key is refused by the parser.
    let out = run_to_end(
        &[
            "serve",
            "--tls-cert-file",
            &missing,
            "--",
            "python3",
            &worker,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
}
