use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};

/// The crypto provider of the preset's TLS: ring, given explicitly to every config it builds.
///
/// Explicit because rustls' process-wide default can be missing (no provider chosen) or
/// ambiguous (both ring and aws-lc-rs linked, as when reqwest's rustls is in the same build),
/// and then `ClientConfig::builder()` panics. ring builds with a C compiler alone; aws-lc-rs
/// needs more of a toolchain on some machines (cmake, or a bundled build that is much slower).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The preset's default TLS settings: the ring provider, rustls' safe default protocol
/// versions (TLS 1.2 and 1.3), the Mozilla roots of `webpki-roots`, no client certificate. Built
/// once per process, cloned after that (a clone shares the roots).
pub(crate) fn default_config() -> ClientConfig {
    static DEFAULT: OnceLock<ClientConfig> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("tower-hardened: ring supports rustls' safe default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth()
        })
        .clone()
}

/// Checks a config given to [`Hardened::tls_config`](crate::Hardened::tls_config).
#[track_caller]
pub(crate) fn check(config: &ClientConfig) {
    assert!(
        config.alpn_protocols.is_empty(),
        "tower-hardened: Hardened::tls_config: leave `alpn_protocols` empty; the preset offers \
         h2 and http/1.1 itself (h2 alone for grpc_connector)"
    );
}
