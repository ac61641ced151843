//! The key of a host: scheme, host and port, as the per-host limits of this crate key them.

use std::fmt;

use http::uri::{Authority, Scheme};
use http::{Request, Uri};

/// Scheme and host lower-cased, the scheme's default port filled in, in one string, so
/// `http://Example.com` and `http://example.com:80` share one limit and any user info is left
/// out.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct HostKey(Box<str>);

impl HostKey {
    /// The key of a request: the URI's scheme and authority, or the `Host` header when the URI
    /// has no authority.
    pub(crate) fn of<B>(req: &Request<B>) -> HostKey {
        let from_header = || {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        };
        match req.uri().authority() {
            Some(a) => HostKey::new(req.uri().scheme(), Some(a)),
            None => HostKey::new(req.uri().scheme(), from_header().as_ref()),
        }
    }

    pub(crate) fn of_uri(uri: &Uri) -> HostKey {
        HostKey::new(uri.scheme(), uri.authority())
    }

    fn new(scheme: Option<&Scheme>, authority: Option<&Authority>) -> HostKey {
        let scheme = scheme.map_or("", Scheme::as_str).to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" | "ws" => Some(80),
            "https" | "wss" => Some(443),
            _ => None,
        };
        let host = authority.map_or("", Authority::host).to_ascii_lowercase();
        let port = authority.and_then(Authority::port_u16).or(default_port);
        let key = match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        };
        HostKey(key.into_boxed_str())
    }
}

impl fmt::Display for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str) -> HostKey {
        HostKey::of_uri(&uri.parse().unwrap())
    }

    #[test]
    fn keys_are_normalised() {
        assert_eq!(key("http://Example.COM/a"), key("http://example.com:80/b"));
        assert_eq!(key("HTTPS://example.com"), key("https://example.com:443"));
        assert_eq!(
            key("http://user:pw@example.com:8080/"),
            key("http://example.com:8080/")
        );
        assert_eq!(key("http://[::1]/"), key("http://[::1]:80/"));
        assert_ne!(key("http://example.com/"), key("https://example.com/"));
        assert_ne!(key("http://example.com:8080/"), key("http://example.com/"));
        assert_ne!(key("http://a.example/"), key("http://b.example/"));
        assert_eq!(
            key("http://Example.com/").to_string(),
            "http://example.com:80"
        );
        let req = Request::get("/p")
            .header(http::header::HOST, "Example.com")
            .body(())
            .unwrap();
        assert_eq!(HostKey::of(&req).to_string(), "://example.com");
        let req = Request::get("http://example.com/p").body(()).unwrap();
        assert_eq!(HostKey::of(&req), key("http://EXAMPLE.com:80"));
    }
}
