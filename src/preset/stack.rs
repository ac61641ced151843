//! The nested types the preset's opaque ones wrap: the one place that spells the stack's order
//! as types. Private, so that fusing layers or moving the client onto another transport changes
//! only this file.

use super::host::{HostBody, HostFuture, HostLimit};
use crate::body_limit::{ResponseBodyLimit, ResponseBodyLimitBody};
use crate::deadline::{Deadline, DeadlineBody, DeadlineFuture};
use crate::drain::{DrainOnDrop, DrainOnDropBody};
use crate::limit::{ConcurrencyLimit, LimitBody};
use crate::replay::Replay;
use crate::telemetry::{Telemetry, TelemetryBody, TelemetryFuture};
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
pub(super) type Stack<S> = Telemetry<Deadline<HostLimit<ConcurrencyLimit<Inner<S>>>>>;

/// The response future of [`Stack`] for request bodies `B`.
pub(super) type StackFuture<S, B> =
    TelemetryFuture<DeadlineFuture<HostFuture<ConcurrencyLimit<Inner<S>>, B>>>;

/// The response body of [`Stack`] around the inner service's body `B`: eight wrappers
/// (`Replay` and `ResponseHeaderTimeout` add none).
pub(super) type StackBody<B> = TelemetryBody<
    DeadlineBody<
        HostBody<
            LimitBody<
                DrainOnDropBody<
                    ResponseBodyLimitBody<BodyIdleTimeoutBody<RequestWriteTimeoutBody<B>>>,
                >,
            >,
        >,
    >,
>;
