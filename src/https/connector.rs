use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::error::BoxError;
use crate::timeout::{ConnectTimeout, ConnectTimeoutLayer, TlsHandshakeTimeoutLayer};

#[cfg(feature = "rustls")]
type Inner = crate::timeout::TlsHandshakeTimeout<
    hyper_rustls::HttpsConnector<ConnectTimeout<HttpConnector>>,
>;
#[cfg(not(feature = "rustls"))]
type Inner = ConnectTimeout<HttpConnector>;

type Io = <Inner as Service<Uri>>::Response;

/// Which protocols the connector offers by ALPN on `https://` connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alpn {
    /// `h2` and `http/1.1`: the server chooses (the preset's client).
    Both,
    /// `h2` only (gRPC, which speaks nothing else).
    #[cfg_attr(not(feature = "tonic"), allow(dead_code))]
    H2,
}

/// The connector of [`Hardened::client`](crate::Hardened::client): `http://` always and, with
/// the `rustls` feature, `https://`, each bounded by the preset's connect timeout and (for
/// `https://`) its TLS-handshake timeout, each reporting its own phase.
///
/// Inside, outer to inner: `TlsHandshakeTimeout → hyper-rustls HttpsConnector → ConnectTimeout
/// → HttpConnector` (see [`timeout`](crate::timeout) for why the connect timeout goes inside).
/// Make one with [`Hardened::connector`](crate::Hardened::connector); it is cheap to clone.
///
/// # Example
///
/// ```
/// use tower_hardened::{Hardened, PoolClientBuilder};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // The preset's connector under a pool of your own settings.
/// let connector = Hardened::new().connector();
/// let client = PoolClientBuilder::new().build::<_, String>(connector);
/// # let _ = client; }
/// ```
#[derive(Clone)]
pub struct HardenedConnector {
    inner: Inner,
}

impl std::fmt::Debug for HardenedConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HardenedConnector")
            .field("https", &cfg!(feature = "rustls"))
            .finish_non_exhaustive()
    }
}

impl HardenedConnector {
    #[cfg_attr(not(feature = "rustls"), allow(unused_variables))]
    pub(crate) fn new(
        connect: ConnectTimeoutLayer,
        tls: TlsHandshakeTimeoutLayer,
        #[cfg(feature = "rustls")] config: rustls::ClientConfig,
        alpn: Alpn,
    ) -> Self {
        let mut http = HttpConnector::new();
        http.set_keepalive(Some(std::time::Duration::from_secs(90)));
        #[cfg(feature = "rustls")]
        {
            use tower_layer::Layer;
            http.enforce_http(false);
            let tcp = connect.layer(http);
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_or_http();
            let https = match alpn {
                Alpn::Both => builder.enable_http1().enable_http2().wrap_connector(tcp),
                Alpn::H2 => builder.enable_http2().wrap_connector(tcp),
            };
            HardenedConnector {
                inner: tls.layer(https),
            }
        }
        #[cfg(not(feature = "rustls"))]
        {
            use tower_layer::Layer;
            HardenedConnector {
                inner: connect.layer(http),
            }
        }
    }
}

impl Service<Uri> for HardenedConnector {
    type Response = HardenedIo;
    type Error = BoxError;
    type Future = HardenedConnectFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        #[cfg(not(feature = "rustls"))]
        if dst.scheme() == Some(&http::uri::Scheme::HTTPS) {
            return HardenedConnectFuture {
                state: State::Refused {
                    err: Some(NO_TLS.into()),
                },
            };
        }
        HardenedConnectFuture {
            state: State::Connecting {
                inner: self.inner.call(dst),
            },
        }
    }
}

#[cfg(not(feature = "rustls"))]
const NO_TLS: &str = "tower-hardened: https:// needs the `rustls` feature of tower-hardened (without it the preset's connector serves http:// only)";

pin_project! {
    /// The future of [`HardenedConnector`]: the connection, or the error of its phase. `Unpin`,
    /// as hyper-util's legacy client requires.
    pub struct HardenedConnectFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Connecting { #[pin] inner: <Inner as Service<Uri>>::Future },
        Refused { err: Option<BoxError> },
    }
}

impl std::fmt::Debug for HardenedConnectFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HardenedConnectFuture")
            .finish_non_exhaustive()
    }
}

impl Future for HardenedConnectFuture {
    type Output = Result<HardenedIo, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Connecting { inner } => inner.poll(cx).map_ok(|inner| HardenedIo { inner }),
            StateProj::Refused { err } => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| "tower-hardened: connect future polled after its end".into()))),
        }
    }
}

/// A connection made by [`HardenedConnector`]: plain TCP, or (with the `rustls` feature) TLS
/// over TCP.
///
/// Forwards [`hyper::rt::Read`], [`hyper::rt::Write`] and hyper-util's
/// [`Connection::connected`] (so the ALPN choice of `h2` reaches the client).
pub struct HardenedIo {
    inner: Io,
}

impl std::fmt::Debug for HardenedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HardenedIo")
            .field("tls", &self.is_tls())
            .finish_non_exhaustive()
    }
}

impl HardenedIo {
    /// Whether this connection is TLS (an `https://` one).
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "rustls")]
        {
            matches!(self.inner, hyper_rustls::MaybeHttpsStream::Https(_))
        }
        #[cfg(not(feature = "rustls"))]
        {
            false
        }
    }
}

impl Read for HardenedIo {
    #[inline]
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl Write for HardenedIo {
    #[inline]
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    #[inline]
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    #[inline]
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

impl Connection for HardenedIo {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}
