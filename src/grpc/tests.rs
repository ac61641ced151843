use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, SizeHint};
use tonic::{Code, Status};

use super::*;
use crate::error::{BoxError, Error, Phase};
use crate::test_util::*;

#[test]
fn every_error_of_ours_has_the_code_of_the_table() {
    let s = Duration::from_secs(1);
    for (phase, code) in [
        (Phase::Total, Code::DeadlineExceeded),
        (Phase::ResponseHeaders, Code::DeadlineExceeded),
        (Phase::BodyIdle, Code::DeadlineExceeded),
        (Phase::RequestWrite, Code::DeadlineExceeded),
        (Phase::Connect, Code::Unavailable),
        (Phase::TlsHandshake, Code::Unavailable),
        (Phase::Acquire, Code::ResourceExhausted),
    ] {
        assert_eq!(code_of(&Error::timeout(phase, s)), code, "{phase:?}");
    }
    assert_eq!(
        code_of(&Error::overloaded(Phase::Acquire, 3)),
        Code::ResourceExhausted
    );
    assert_eq!(code_of(&Error::body_too_large(10)), Code::ResourceExhausted);
    let closed = Error::connection_closed(
        Some(Duration::from_secs(2)),
        crate::error::NotRetried::Method(http::Method::POST),
    );
    assert_eq!(code_of(&closed), Code::Unavailable);
}

#[test]
fn a_status_keeps_our_message_and_our_error_even_when_wrapped() {
    let ours = Error::timeout(Phase::Connect, Duration::from_millis(300));
    // As tonic's channel hands a connect failure on: inside an io::Error, inside a box.
    let wrapped: BoxError = Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, ours));
    let status = status_of(wrapped);
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "connect (DNS + TCP) not done within 300ms"
    );
    let source = std::error::Error::source(&status).expect("source kept");
    assert!(source.is::<std::io::Error>(), "the error as it came");
    assert_eq!(
        Error::find(&status).and_then(Error::phase),
        Some(Phase::Connect)
    );
}

#[test]
fn other_errors_get_tonics_own_mapping_and_a_status_passes_unchanged() {
    let status = status_of(Box::new(Status::permission_denied("no")));
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "no");
    let other = status_of("something else".into());
    assert_eq!(other.code(), Code::Unknown);
    assert_eq!(other.message(), "something else");
    // What tonic does with our status: `Status::from_error` gives it back as it was.
    let ours = status_of(Error::body_too_large(4).into());
    let again = Status::from_error(Box::new(ours));
    assert_eq!(again.code(), Code::ResourceExhausted);
    assert_eq!(again.message(), "response body longer than 4 bytes");
    assert!(Error::find(&again).is_some());
}

#[tokio::test]
async fn body_errors_become_statuses_and_hints_are_forwarded() {
    let (tx, inner) = ChannelBody::new();
    let mut body = GrpcBody::new(inner.with_hint(SizeHint::with_exact(7)));
    assert_eq!(body.size_hint().exact(), Some(7));
    assert!(!body.is_end_stream());
    tx.send(Ok(Bytes::from("abc"))).unwrap();
    let frame = poll_once(&mut body);
    assert!(matches!(frame, std::task::Poll::Ready(Some(Ok(_)))));
    tx.send(Err(
        Error::timeout(Phase::BodyIdle, Duration::from_secs(2)).into()
    ))
    .unwrap();
    let std::task::Poll::Ready(Some(Err(status))) = poll_once(&mut body) else {
        panic!("an error frame");
    };
    assert_eq!(status.code(), Code::DeadlineExceeded);
    assert_eq!(status.message(), "no response body data for 2s");

    let full = GrpcBody::new(http_body_util::Full::new(Bytes::from("hello")));
    assert_eq!(full.size_hint().exact(), Some(5));
    let empty = GrpcBody::new(http_body_util::Empty::<Bytes>::new());
    assert!(empty.is_end_stream());
}

#[tokio::test]
async fn the_call_error_is_a_status_and_readiness_is_passed_on() {
    use tower::ServiceExt;
    let svc = Grpc::new(tower::service_fn(|_req: Request<()>| async {
        Err::<Response<ChannelBody>, BoxError>(Error::overloaded(Phase::Acquire, 0).into())
    }));
    let status = svc.oneshot(Request::new(())).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.message(),
        "overloaded: the queue for a permit is full (0 waiting)"
    );
}

#[test]
fn public_types_are_send_sync_clone() {
    type Inner = tower::util::BoxCloneSyncService<
        Request<tonic::body::Body>,
        Response<tonic::body::Body>,
        BoxError,
    >;
    assert_send_sync::<Grpc<Inner>>();
    assert_clone::<Grpc<Inner>>();
    assert_send_sync::<BoxRequestBody<Inner>>();
    assert_clone::<BoxRequestBody<Inner>>();
    assert_send_sync::<GrpcLayer>();
    assert_clone::<GrpcLayer>();
    assert_send_sync::<GrpcBody<ChannelBody>>();
    assert_send_sync::<GrpcConnector>();
    assert_clone::<GrpcConnector>();
    assert_send_sync::<HardenedGrpc<Inner>>();
    assert_clone::<HardenedGrpc<Inner>>();
}
