use std::sync::Arc;

use tonic::{Code, Status};

use crate::error::{BoxError, Error, ErrorKind, Phase};

/// The gRPC code of one of this crate's errors: the table of the [module docs](super).
///
/// ```
/// use std::time::Duration;
/// use tonic::Code;
/// use tower_hardened::{grpc, Error, Phase};
///
/// assert_eq!(grpc::code_of(&Error::timeout(Phase::BodyIdle, Duration::from_secs(1))), Code::DeadlineExceeded);
/// assert_eq!(grpc::code_of(&Error::timeout(Phase::Connect, Duration::from_secs(1))), Code::Unavailable);
/// assert_eq!(grpc::code_of(&Error::overloaded(Phase::Acquire, 8)), Code::ResourceExhausted);
/// ```
pub fn code_of(err: &Error) -> Code {
    match err.kind() {
        ErrorKind::Timeout => match err.phase().unwrap_or(Phase::Total) {
            Phase::Total | Phase::ResponseHeaders | Phase::BodyIdle | Phase::RequestWrite => {
                Code::DeadlineExceeded
            }
            Phase::Connect | Phase::TlsHandshake => Code::Unavailable,
            Phase::Acquire => Code::ResourceExhausted,
        },
        ErrorKind::Overloaded | ErrorKind::BodyTooLarge => Code::ResourceExhausted,
        // The peer closed a reused connection before answering and the call was not replayed:
        // a transient failure of the channel, as gRPC reports a broken connection.
        ErrorKind::ConnectionClosed => Code::Unavailable,
    }
}

/// Turns any error of a gRPC call or of its response body into the [`Status`] tonic passes on
/// unchanged.
///
/// With one of this crate's [`Error`]s anywhere in its source chain (found with
/// [`Error::find`], through tonic's and hyper's wrapping): the code of [`code_of`], our
/// `Display` as the message, and the whole error kept as the status' `source()` (so
/// [`Error::find`] on the status finds ours again). Any other error gets tonic's own mapping
/// ([`Status::from_error`]): a status the server sent stays what it was.
///
/// ```
/// use std::time::Duration;
/// use tonic::Code;
/// use tower_hardened::{grpc, BoxError, Error, Phase};
///
/// let err: BoxError = Error::timeout(Phase::ResponseHeaders, Duration::from_secs(2)).into();
/// let status = grpc::status_of(err);
/// assert_eq!(status.code(), Code::DeadlineExceeded);
/// assert_eq!(status.message(), "no response headers within 2s");
/// let ours = Error::find(&status).unwrap();
/// assert_eq!(ours.phase(), Some(Phase::ResponseHeaders));
///
/// let theirs = grpc::status_of(Box::new(tonic::Status::not_found("no such key")));
/// assert_eq!(theirs.code(), Code::NotFound);
/// ```
pub fn status_of(err: BoxError) -> Status {
    let Some(ours) = Error::find(&*err) else {
        return Status::from_error(err);
    };
    let mut status = Status::new(code_of(ours), ours.to_string());
    status.set_source(Arc::from(err));
    status
}
