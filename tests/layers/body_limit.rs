use tower::Service;
use tower_hardened::{
    BoxError, Error, ErrorKind, ResponseBodyLimit, ResponseBodyLimitBody, ResponseBodyLimitFuture,
    ResponseBodyLimitLayer,
};

use crate::util::*;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, SizeHint};
use http_body_util::{BodyExt, Full};

fn kind(err: &BoxError) -> Option<ErrorKind> {
    Error::find(&**err).map(Error::kind)
}

#[tokio::test]
async fn a_body_at_the_cap_passes_one_byte_more_fails() {
    let ok = ResponseBodyLimitBody::new(Full::new(Bytes::from(vec![1u8; 100])), 100);
    assert_eq!(ok.size_hint().exact(), Some(100));
    assert_eq!(ok.collect().await.unwrap().to_bytes().len(), 100);
    let big = ResponseBodyLimitBody::new(Full::new(Bytes::from(vec![1u8; 101])), 100);
    let err = big.collect().await.unwrap_err();
    assert_eq!(kind(&err), Some(ErrorKind::BodyTooLarge));
    assert!(Error::find(&*err).unwrap().phase().is_none());
}

#[tokio::test]
async fn a_streamed_body_is_cut_when_it_crosses_the_cap() {
    let (tx, body) = ChannelBody::new();
    let mut body = ResponseBodyLimitBody::new(body, 10);
    tx.send(Ok(Bytes::from("123456"))).unwrap();
    tx.send(Ok(Bytes::from("7890"))).unwrap();
    tx.send(Ok(Bytes::from("x"))).unwrap();
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "123456"
    );
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "7890"
    );
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(kind(&err), Some(ErrorKind::BodyTooLarge));
    assert!(body.is_end_stream());
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn a_known_too_large_length_fails_before_reading() {
    let (tx, body) = ChannelBody::new();
    let mut body = ResponseBodyLimitBody::new(body.with_hint(SizeHint::with_exact(1 << 30)), 1024);
    // Nothing sent yet; the hint alone is enough.
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(kind(&err), Some(ErrorKind::BodyTooLarge));
    drop(tx);
}

#[test]
#[should_panic(expected = "cap must be greater than zero")]
fn zero_cap_is_rejected() {
    let _ = ResponseBodyLimitLayer::new(0);
}

#[test]
fn public_types_are_send_sync_clone() {
    type M = tower_test::mock::Mock<Request<()>, Response<ChannelBody>>;
    assert_send_sync::<ResponseBodyLimit<M>>();
    assert_clone::<ResponseBodyLimit<M>>();
    assert_send_sync::<ResponseBodyLimitFuture<<M as Service<Request<()>>>::Future>>();
    assert_send_sync::<ResponseBodyLimitBody<ChannelBody>>();
}
