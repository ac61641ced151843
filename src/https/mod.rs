//! The preset's connector, [`HardenedConnector`]: `http://` always and, with the `rustls`
//! feature, `https://`.
//!
//! With `rustls`, `Hardened::new().client()` serves both schemes: TLS by rustls through
//! hyper-rustls with an explicit ring provider (`builder_with_provider`, so a missing or doubly
//! set process-wide default cannot make it fail), the Mozilla roots of `webpki-roots`, ALPN `h2`
//! and `http/1.1` (the server chooses; HTTP/2 is then used on that connection). The connect
//! timeout bounds DNS + TCP, the TLS-handshake timeout the handshake only, each failing with its
//! own [`Phase`](crate::Phase). Building it cannot fail. Give your own settings (the system's
//! roots, a client certificate) with [`Hardened::tls_config`](crate::Hardened::tls_config); a
//! wrong or unknown certificate is a rustls error (`invalid peer certificate: ...`), never a
//! timeout.
//!
//! # Example
//!
//! ```no_run
//! # #[cfg(feature = "rustls")]
//! # #[tokio::main] async fn main() -> Result<(), tower_hardened::BoxError> {
//! use http_body_util::{BodyExt, Empty};
//! use tower::ServiceExt;
//!
//! let client = tower_hardened::Hardened::new().client::<Empty<bytes::Bytes>>();
//! let resp = client.oneshot(http::Request::get("https://example.com/").body(Empty::new())?).await?;
//! println!("{:?} {}", resp.version(), resp.into_body().collect().await?.to_bytes().len());
//! # Ok(()) }
//! # #[cfg(not(feature = "rustls"))] fn main() {}
//! ```
//!
//! # Where it goes
//!
//! Under the pool: `Hardened::client` builds `PoolConnector(HardenedConnector)`; inside it,
//! `TlsHandshakeTimeout → HttpsConnector → ConnectTimeout → HttpConnector`. Use
//! [`Hardened::connector`](crate::Hardened::connector) to put it under a client of your own.
//!
//! # Panics
//!
//! [`Hardened::tls_config`](crate::Hardened::tls_config) panics when the config already lists
//! ALPN protocols (the preset sets them). Without `rustls`, an `https://` request fails with an
//! error that names the missing feature.

#[cfg(feature = "rustls")]
mod config;
mod connector;

#[cfg(feature = "rustls")]
#[allow(unused_imports)]
pub(crate) use self::config::{check, default_config, provider};
#[allow(unused_imports)]
pub(crate) use self::connector::Alpn;
pub use self::connector::{HardenedConnectFuture, HardenedConnector, HardenedIo};

/// The rustls crate this one is built with, for [`Hardened::tls_config`](crate::Hardened::tls_config).
#[cfg(feature = "rustls")]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use rustls;

#[cfg(test)]
mod tests;
