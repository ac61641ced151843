use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, SizeHint};

use super::*;
use crate::error::{Error, Phase};
use crate::test_util::*;

#[test]
fn public_types_are_send_sync_clone() {
    assert_send_sync::<HardenedReqwest>();
    assert_clone::<HardenedReqwest>();
    assert_send_sync::<ReqwestService>();
    assert_clone::<ReqwestService>();
    fn assert_send<T: Send>() {}
    assert_send::<ReqwestFuture>();
    assert_send::<ReqwestServiceFuture>();
}

#[tokio::test]
async fn our_timeouts_reach_reqwest_as_timed_out_io_errors_and_nothing_else_changes() {
    let (tx, inner) = ChannelBody::new();
    let mut body = TimeoutAsIo {
        inner: inner.with_hint(SizeHint::with_exact(9)),
    };
    assert_eq!(body.size_hint().exact(), Some(9));
    assert!(!body.is_end_stream());

    tx.send(Err(
        Error::timeout(Phase::BodyIdle, Duration::from_secs(1)).into()
    ))
    .unwrap();
    let Poll::Ready(Some(Err(err))) = poll_once(&mut body) else {
        panic!("an error frame");
    };
    let io = err.downcast_ref::<std::io::Error>().expect("an io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(
        Error::find(&*err).and_then(Error::phase),
        Some(Phase::BodyIdle)
    );

    tx.send(Err(Error::body_too_large(3).into())).unwrap();
    let Poll::Ready(Some(Err(err))) = poll_once(&mut body) else {
        panic!("an error frame");
    };
    assert!(err.is::<Error>(), "not a timeout: unchanged");

    tx.send(Ok(Bytes::from("data"))).unwrap();
    assert!(matches!(poll_once(&mut body), Poll::Ready(Some(Ok(_)))));
}
