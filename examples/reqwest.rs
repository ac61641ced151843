//! A `reqwest::Client` with the preset's stack (feature `reqwest`): reqwest's types at the edges,
//! one deadline, per-host limits held until the body ends, drain-on-drop, typed phases.
//!
//! Starts its own hyper server on 127.0.0.1: `/json` answers `{"items":[1,2,3]}`, `/stall-body`
//! sends a first chunk and then nothing.
//!
//! ```text
//! cargo run --example reqwest --features reqwest
//! ```

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower_hardened::{BoxError, Error, Hardened};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let addr = server().await?;
    let base = format!("http://{addr}");

    let hardened = Hardened::new()
        .body_idle(Duration::from_millis(500))
        .max_requests_per_host(8);
    let inner = reqwest::Client::builder()
        .no_proxy()
        // Connecting happens inside reqwest: bound it there.
        .connector_layer(hardened.connect_layer())
        .build()?;
    let client = hardened.reqwest(inner);

    // reqwest's own methods keep working.
    let resp = client
        .send(client.client().get(format!("{base}/json")))
        .await?;
    println!("{} {}", resp.status(), resp.url());
    let items: serde_json::Value = resp.error_for_status()?.json().await?;
    println!("json: {items}");

    let err = client
        .send(client.client().get(format!("{base}/missing")))
        .await?
        .error_for_status()
        .unwrap_err();
    println!("error_for_status: {err}");

    // A body that stalls: reqwest's own error, and it says it is a timeout.
    let resp = client
        .send(client.client().get(format!("{base}/stall-body")))
        .await?;
    let err = resp.bytes().await.unwrap_err();
    println!(
        "stalled body: is_timeout() = {}, phase {:?}: {}",
        err.is_timeout(),
        Error::find(&err).and_then(Error::phase),
        Error::find(&err).unwrap()
    );

    // A per-request timeout is an earlier deadline.
    let err = client
        .send(
            client
                .client()
                .get(format!("{base}/stall-body"))
                .timeout(Duration::from_millis(200)),
        )
        .await?
        .bytes()
        .await
        .unwrap_err();
    println!("with .timeout(200ms): {}", Error::find(&err).unwrap());

    let snap = hardened.stats_handle().snapshot();
    println!(
        "in flight now: {}, timeouts: {}",
        snap.in_flight,
        snap.timeouts_total()
    );
    Ok(())
}

async fn server() -> Result<std::net::SocketAddr, BoxError> {
    type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(
                |req: http::Request<hyper::body::Incoming>| async move {
                    let body: Body = match req.uri().path() {
                        "/json" => Full::new(Bytes::from(r#"{"items":[1,2,3]}"#)).boxed(),
                        "/stall-body" => {
                            use tokio_stream::StreamExt;
                            let first = Ok::<_, std::convert::Infallible>(http_body::Frame::data(
                                Bytes::from("first chunk"),
                            ));
                            let stalled = tokio_stream::once(first).chain(tokio_stream::pending());
                            StreamBody::new(stalled).boxed()
                        }
                        _ => {
                            let mut resp =
                                http::Response::new(Full::new(Bytes::from("no")).boxed());
                            *resp.status_mut() = http::StatusCode::NOT_FOUND;
                            return Ok::<_, std::convert::Infallible>(resp);
                        }
                    };
                    Ok(http::Response::new(body))
                },
            );
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}
