use tower_service::Service;

use super::*;
use crate::test_util::*;
use crate::Hardened;

fn assert_unpin_send<T: Unpin + Send>() {}

#[test]
fn public_types_are_send_sync_clone_and_unpin() {
    assert_send_sync::<HardenedConnector>();
    assert_clone::<HardenedConnector>();
    assert_unpin_send::<HardenedConnectFuture>();
    assert_send_sync::<HardenedIo>();
    assert_unpin_send::<HardenedIo>();
}

#[cfg(not(feature = "rustls"))]
#[tokio::test]
async fn without_rustls_an_https_uri_names_the_missing_feature() {
    let mut connector = Hardened::new().connector();
    let err = connector
        .call("https://127.0.0.1:1/".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("needs the `rustls` feature"),
        "{err}"
    );
}

#[cfg(feature = "rustls")]
#[test]
fn the_default_config_has_the_webpki_roots_ring_and_no_alpn_of_its_own() {
    let cfg = default_config();
    assert!(cfg.alpn_protocols.is_empty());
    assert_eq!(
        cfg.crypto_provider().cipher_suites.len(),
        rustls::crypto::ring::default_provider().cipher_suites.len()
    );
    assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
    // Made once: a second call is a clone of the same config, its roots shared.
    let again = default_config();
    assert!(std::sync::Arc::ptr_eq(
        cfg.crypto_provider(),
        again.crypto_provider()
    ));
}

#[cfg(feature = "rustls")]
#[tokio::test]
async fn plain_http_goes_through_the_tls_connector_unchanged() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut connector = Hardened::new().connector();
    let io = connector
        .call(format!("http://{addr}/").parse().unwrap())
        .await
        .unwrap();
    assert!(!io.is_tls());
    use hyper_util::client::legacy::connect::Connection;
    assert!(!io.connected().is_negotiated_h2());
}
