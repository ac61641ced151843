//! HTTPS in one line: `Hardened::new().client()` serves `https://` (feature `rustls`).
//!
//! Starts its own TLS server on 127.0.0.1 with a certificate made now, then shows: a request
//! over HTTP/2 chosen by ALPN, the preset's default roots refusing that unknown certificate
//! (a clear error, not a timeout), and a server that never answers the handshake (a
//! `TlsHandshake` timeout).
//!
//! ```text
//! cargo run --example https --features rustls
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_hardened::https::rustls;
use tower_hardened::{BoxError, Error, Hardened};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let (server, trusted) = tls_server().await?;
    let url = format!("https://{server}/");

    // 1. The one line, with roots that trust the test certificate.
    let client = Hardened::new().tls_config(trusted).client::<Empty<Bytes>>();
    let resp = client
        .clone()
        .oneshot(http::Request::get(&url).body(Empty::new())?)
        .await?;
    let version = resp.version();
    let body = resp.into_body().collect().await?.to_bytes();
    println!("{url}: {version:?}, {:?}", body);

    // 2. The preset's own roots (webpki-roots) do not know it: a rustls error, at once.
    let default = Hardened::new().client::<Empty<Bytes>>();
    let err = default
        .oneshot(http::Request::get(&url).body(Empty::new())?)
        .await
        .unwrap_err();
    println!(
        "default roots: {} (ours: {:?})",
        chain(&*err),
        Error::find(&*err).is_some()
    );

    // 3. A server that accepts TCP and never says a word: the handshake timeout fires.
    let silent = TcpListener::bind("127.0.0.1:0").await?;
    let silent_url = format!("https://{}/", silent.local_addr()?);
    let client = Hardened::new()
        .tls_handshake(Duration::from_millis(500))
        .client::<Empty<Bytes>>();
    let start = Instant::now();
    let err = client
        .oneshot(http::Request::get(&silent_url).body(Empty::new())?)
        .await
        .unwrap_err();
    let ours = Error::find(&*err).expect("our timeout");
    println!(
        "silent server: {:?} after {:?}: {ours}",
        ours.phase(),
        start.elapsed()
    );
    drop(silent);
    Ok(())
}

/// A rustls + hyper server on 127.0.0.1 (ALPN h2 and http/1.1) answering "hello over TLS",
/// with a self-signed certificate made now; its address and a client config that trusts it.
async fn tls_server() -> Result<(std::net::SocketAddr, rustls::ClientConfig), BoxError> {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()])?;
    let cert = made.cert.der().clone();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                        "hello over TLS",
                    ))))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Ok((addr, client))
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        out = format!("{out}: {e}");
        next = e.source();
    }
    out
}
