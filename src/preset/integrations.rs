//! The entry points of the integrations on [`Hardened`]: HTTPS (feature `rustls`), gRPC
//! (`tonic`) and reqwest (`reqwest`). The code is in `src/https/`, `src/grpc/` and `src/reqwest/`.

use super::Hardened;
use crate::https::HardenedConnector;

impl Hardened {
    /// The connector of [`Hardened::client`]: `http://`, and with the `rustls` feature
    /// `https://`, with this preset's connect and TLS-handshake timeouts (see
    /// [`HardenedConnector`]). For [`Hardened::client_with`] or a pool of your own.
    pub fn connector(&self) -> HardenedConnector {
        self.connector_for(crate::https::Alpn::Both)
    }

    fn connector_for(&self, alpn: crate::https::Alpn) -> HardenedConnector {
        HardenedConnector::new(
            self.connect_layer(),
            self.tls_layer(),
            #[cfg(feature = "rustls")]
            self.tls_config
                .as_deref()
                .cloned()
                .unwrap_or_else(crate::https::default_config),
            alpn,
        )
    }

    /// Your own TLS settings for `https://` (the system's roots, a client certificate, ...), in
    /// place of the preset's (ring provider, `webpki-roots`). Build it with
    /// `ClientConfig::builder_with_provider` and leave `alpn_protocols` empty: the preset offers
    /// `h2` and `http/1.1` itself. The [`https::rustls`](crate::https::rustls) re-export is the
    /// version this crate uses.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_hardened::https::rustls;
    ///
    /// let roots = rustls::RootCertStore::empty(); // add yours
    /// let config = rustls::ClientConfig::builder_with_provider(Arc::new(
    ///     rustls::crypto::ring::default_provider(),
    /// ))
    /// .with_safe_default_protocol_versions()
    /// .unwrap()
    /// .with_root_certificates(roots)
    /// .with_no_client_auth();
    /// let hardened = tower_hardened::Hardened::new().tls_config(config);
    /// # let _ = hardened;
    /// ```
    ///
    /// # Panics
    ///
    /// When `config.alpn_protocols` is not empty.
    #[cfg(feature = "rustls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
    #[track_caller]
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        crate::https::check(&config);
        self.tls_config = Some(std::sync::Arc::new(config));
        self.with_new_transport()
    }
    /// The request-side stack for a tonic `Channel` (or any gRPC service), every error a
    /// `tonic::Status` with a gRPC code, the time left sent as `grpc-timeout`: see
    /// [`grpc`](crate::grpc) for the code table and the deadline rules. It shares this preset's
    /// limits and stats.
    ///
    /// ```
    /// use tower_hardened::Hardened;
    /// use tower_layer::Layer;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let hardened = Hardened::new();
    /// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051")
    ///     .connect_with_connector_lazy(hardened.grpc_connector());
    /// let channel = hardened.grpc_layer().layer(channel);
    /// # let _ = channel; }
    /// ```
    #[cfg(feature = "tonic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    pub fn grpc_layer(&self) -> crate::grpc::GrpcLayer {
        crate::grpc::GrpcLayer::new(super::HardenedLayer {
            config: self.clone(),
            grpc: true,
            own_transport: false,
        })
    }

    /// A connector for tonic's `Endpoint::connect_with_connector`: this preset's connect timeout
    /// and (with `rustls`, for `https://`, ALPN `h2`) TLS-handshake timeout, under the pool's
    /// per-host connection cap and write-stall timeout. Errors of the channel's connects are
    /// then `Unavailable` with the phase (`Connect`, `TlsHandshake`) in the message. The pool's
    /// idle timeout and max lifetime do not apply: the channel keeps its connection itself.
    #[cfg(feature = "tonic")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
    pub fn grpc_connector(&self) -> crate::grpc::GrpcConnector {
        let mut layer = self.pool.connector_layer().clone();
        if layer.write_stall.is_none() {
            layer = layer.write_stall_timeout(self.request_write);
        }
        crate::pool::PoolConnector::new(self.connector_for(crate::https::Alpn::H2), layer)
    }
    /// `client` with this preset's request-side stack around it, reqwest's own types at its
    /// edges: see [`reqwest`](crate::reqwest). It shares this preset's limits and stats.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), tower_hardened::BoxError> {
    /// let client = tower_hardened::Hardened::new().reqwest(reqwest::Client::new());
    /// let resp = client.send(client.client().get("http://127.0.0.1:8080/")).await?;
    /// println!("{}", resp.text().await?);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "reqwest")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
    pub fn reqwest(&self, client: ::reqwest::Client) -> crate::reqwest::HardenedReqwest {
        crate::reqwest::HardenedReqwest::new(tower_layer::Layer::layer(
            &self.layer(),
            crate::reqwest::ReqwestService::new(client),
        ))
    }
}
