//! Using one layer on its own in a unit test, with `tower_test`'s mock service and paused tokio
//! time: exact and instant. Copy this shape into your own `#[tokio::test(start_paused = true)]`.
//!
//! ```text
//! cargo run --example tower_test_unit
//! ```
use std::time::Duration;

use http::{Request, Response};
use tokio_test::{assert_pending, assert_ready_err, task};
use tower_hardened::{Error, Phase, ResponseHeaderTimeoutLayer};
use tower_test::mock;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        // The layer around a mock: the test plays the server through `handle`.
        let (mut svc, mut handle) = mock::spawn_layer::<Request<()>, Response<()>, _>(
            ResponseHeaderTimeoutLayer::new(Duration::from_secs(5)),
        );
        assert!(svc.poll_ready().is_ready());
        let mut response = task::spawn(svc.call(Request::new(())));
        let (_request, _reply) = handle
            .next_request()
            .await
            .expect("the request got through");

        // Paused time: advance exactly to one millisecond before the limit...
        tokio::time::advance(Duration::from_millis(4999)).await;
        assert_pending!(response.poll());
        // ...and to the limit.
        tokio::time::advance(Duration::from_millis(1)).await;
        let err = assert_ready_err!(response.poll());
        assert_eq!(
            Error::find(&*err).and_then(Error::phase),
            Some(Phase::ResponseHeaders)
        );
        println!("fired exactly at the limit: {err}");
    });
}
