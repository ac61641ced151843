//! The preset's public surface without a test server of the suite: construction checks, one
//! set of limits for every client of one `Hardened`, and the hints of the client's response
//! body, against a real hyper server on 127.0.0.1. (The fault matrix is in `tests/preset.rs`;
//! tests that read private fields are in `src/preset/tests.rs`.)
#![cfg(feature = "preset")]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use tokio_test::{assert_pending, task};
use tower::ServiceExt;
use tower_hardened::{Hardened, HardenedClientBody};

#[test]
fn bad_configuration_is_refused_at_construction() {
    let cases: Vec<(fn(), &str)> = vec![
        (
            || drop(Hardened::new().total(Duration::ZERO)),
            "Hardened::total must be greater than zero",
        ),
        (
            || drop(Hardened::new().connect(Duration::ZERO)),
            "Hardened::connect must be greater than zero",
        ),
        (
            || drop(Hardened::new().body_idle(Duration::ZERO)),
            "Hardened::body_idle must be greater than zero",
        ),
        (
            || drop(Hardened::new().max_in_flight(0)),
            "max_in_flight must be greater than zero",
        ),
        (
            || drop(Hardened::new().max_requests_per_host(0)),
            "max_requests_per_host must be greater than zero",
        ),
        (
            || drop(Hardened::new().max_response_body(0)),
            "cap must be greater than zero",
        ),
        (
            || drop(Hardened::new().max_response_header_bytes(100)),
            "at least 8192",
        ),
    ];
    for (f, text) in cases {
        let err = std::panic::catch_unwind(f).unwrap_err();
        let msg = err
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap();
        assert!(msg.contains(text), "{msg:?} should contain {text:?}");
    }
    // Very large limits are fine: they mean "no limit".
    let _ = Hardened::new()
        .total(Duration::MAX)
        .response_headers(Duration::MAX)
        .max_waiting(usize::MAX);
}

#[tokio::test]
async fn a_configure_on_the_pool_is_kept_by_the_legacy_client() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let called = Arc::new(AtomicBool::new(false));
    let seen = called.clone();
    let preset =
        Hardened::new().pool_with(|p| p.configure(move |_b| seen.store(true, Ordering::SeqCst)));
    let _client = preset.legacy_client::<http_body_util::Empty<Bytes>>();
    assert!(
        called.load(Ordering::SeqCst),
        "the user's configure was replaced by the preset's own"
    );
}

#[test]
#[should_panic(expected = "Hardened::max_in_flight must be at most")]
fn a_limit_too_large_is_refused_by_its_setter() {
    let _ = Hardened::new().max_in_flight(usize::MAX);
}

#[test]
#[should_panic(expected = "Hardened::max_requests_per_host must be at most")]
fn a_per_host_limit_too_large_is_refused_by_its_setter() {
    let _ = Hardened::new().max_requests_per_host(usize::MAX);
}

#[tokio::test]
async fn two_clients_of_one_preset_share_its_limits() {
    let preset = Hardened::new().max_in_flight(1);
    let global = preset.limit_handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri: http::Uri = format!("http://{}/", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    // Accepts and never answers: each request holds its permit until it is dropped.
    let _server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let one = preset.client::<http_body_util::Empty<Bytes>>();
    let two = preset.client::<http_body_util::Empty<Bytes>>();
    let req = || {
        Request::get(uri.clone())
            .body(http_body_util::Empty::new())
            .unwrap()
    };
    let mut first = task::spawn(one.oneshot(req()));
    assert_pending!(first.poll());
    assert_eq!(global.in_flight(), 1);
    let mut second = task::spawn(two.oneshot(req()));
    assert_pending!(second.poll());
    assert_eq!(
        (global.in_flight(), global.waiting()),
        (1, 1),
        "the second client waits for the first client's permit"
    );
    drop(first);
    assert!(second.is_woken());
    assert_pending!(second.poll());
    assert_eq!((global.in_flight(), global.waiting()), (1, 0));
    drop(second);
    assert_eq!(global.in_flight(), 0);
}

/// A hyper HTTP/1 server on 127.0.0.1: `/five` answers `hello` (with a content length), any
/// other path an empty body. Ends with the test's runtime.
async fn serve() -> Uri {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let body = if req.uri().path() == "/five" {
                        Full::new(Bytes::from("hello"))
                    } else {
                        Full::new(Bytes::new())
                    };
                    Ok::<_, Infallible>(Response::new(body))
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    format!("http://{addr}/").parse().unwrap()
}

/// The client's response body forwards the transport's hints: an exact size from the content
/// length, the end of the stream after the last byte, and an empty body over at once.
#[tokio::test]
async fn the_client_body_forwards_size_hint_and_is_end_stream() {
    let base = serve().await;
    let client = Hardened::new().client::<Empty<Bytes>>();
    let get = |path: &str| {
        Request::get(format!("{base}{}", path.trim_start_matches('/')))
            .body(Empty::new())
            .unwrap()
    };

    let resp = client.clone().oneshot(get("/five")).await.unwrap();
    let mut body: HardenedClientBody = resp.into_body();
    assert_eq!(body.size_hint().exact(), Some(5));
    assert!(!body.is_end_stream());
    let mut read = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            read.extend_from_slice(&data);
        }
    }
    assert_eq!(read, b"hello");
    assert!(body.is_end_stream(), "over after its last byte");
    assert_eq!(body.size_hint().exact(), Some(0));

    let empty = client.oneshot(get("/empty")).await.unwrap().into_body();
    assert!(
        empty.is_end_stream(),
        "an empty body is over before its first poll"
    );
    assert_eq!(empty.size_hint().exact(), Some(0));
}

/// A hyper HTTP/1 server on 127.0.0.1 that counts the connections it accepted, and answers
/// each request with the length of its body (and whether it came with a content length).
async fn counting_server() -> (Uri, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let svc =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let sized = req.headers().contains_key(http::header::CONTENT_LENGTH);
                    let n = req.into_body().collect().await?.to_bytes().len();
                    let text = format!("{n} {}", if sized { "sized" } else { "chunked" });
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text))))
                });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (format!("http://{addr}/").parse().unwrap(), accepted)
}

/// One `Hardened` is one pool: its clients (of any request body type) and their clones reuse
/// one connection, and a transport setting gives the clients made after it a pool of their
/// own. The request bodies keep their length on the way (a content length, not chunks).
#[tokio::test]
async fn the_clients_of_one_preset_share_one_pool_whatever_their_body_type() {
    use std::sync::atomic::Ordering;
    let (uri, accepted) = counting_server().await;
    let preset = Hardened::new();
    let text = |resp: Response<HardenedClientBody>| async move {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let empty = preset.clone().client::<Empty<Bytes>>();
    let full = preset.client::<Full<Bytes>>();
    let boxed = preset.client::<http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>>();

    let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
    assert_eq!(
        text(empty.clone().oneshot(req).await.unwrap()).await,
        "0 chunked"
    );
    let req = Request::post(uri.clone())
        .body(Full::new(Bytes::from("abc")))
        .unwrap();
    assert_eq!(text(full.oneshot(req).await.unwrap()).await, "3 sized");
    let body = Full::new(Bytes::from("abcd")).boxed_unsync();
    let req = Request::post(uri.clone()).body(body).unwrap();
    assert_eq!(text(boxed.oneshot(req).await.unwrap()).await, "4 sized");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one pooled connection");

    // A new transport setting: a new pool for the clients made after it.
    let other = preset.max_idle(10).client::<Empty<Bytes>>();
    let req = Request::get(uri.clone()).body(Empty::new()).unwrap();
    text(other.oneshot(req).await.unwrap()).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a pool of its own");
    // The first clients keep theirs.
    let req = Request::get(uri).body(Empty::new()).unwrap();
    text(empty.oneshot(req).await.unwrap()).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}
