//! The nested types the preset's opaque ones wrap: the one place that spells the stack's order
//! as types. Private, so that fusing layers or moving the client onto another transport changes
//! only this file.

use crate::body_limit::{ResponseBodyLimit, ResponseBodyLimitBody};
use crate::deadline::{Deadline, DeadlineBody, DeadlineFuture};
use crate::drain::{DrainOnDrop, DrainOnDropBody};
use crate::limit::{ConcurrencyLimit, LimitBody, LimitFuture, PerHostLimit};
use crate::replay::Replay;
use crate::timeout::{
    BodyIdleTimeout, BodyIdleTimeoutBody, RequestWriteTimeout, RequestWriteTimeoutBody,
    ResponseHeaderTimeout,
};

/// Everything inside the two limiters, outer to inner. The replay sits inside the limits and
/// the deadline (a replay keeps both) and outside the phase timeouts (each attempt gets its own).
pub(super) type Inner<S> = DrainOnDrop<
    ResponseBodyLimit<Replay<ResponseHeaderTimeout<BodyIdleTimeout<RequestWriteTimeout<S>>>>>,
>;

/// The whole request-side stack around `S`, outer to inner.
pub(super) type Stack<S> = Deadline<PerHostLimit<ConcurrencyLimit<Inner<S>>>>;

/// The response future of [`Stack`] for request bodies `B`.
pub(super) type StackFuture<S, B> = DeadlineFuture<LimitFuture<ConcurrencyLimit<Inner<S>>, B>>;

/// The response body of [`Stack`] around the inner service's body `B`: seven wrappers
/// (`Replay` and `ResponseHeaderTimeout` add none).
pub(super) type StackBody<B> = DeadlineBody<
    LimitBody<
        LimitBody<
            DrainOnDropBody<ResponseBodyLimitBody<BodyIdleTimeoutBody<RequestWriteTimeoutBody<B>>>>,
        >,
    >,
>;
