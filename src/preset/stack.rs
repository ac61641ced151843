//! The nested types the preset's opaque ones wrap: the one place that spells the stack's order
//! as types. Private, so that fusing layers or moving the client onto another transport changes
//! only this file.
//!
//! Two stacks. The default one, [`Fast`]: every guarantee fused into one service ([`Fused`]).
//! With an adaptive per-host limit, [`Stack`]: every
//! layer on its own, as `ServiceBuilderExt` composes them.

use super::fused::{Fused, FusedFuture};
use super::fused_body::FusedBody;
use super::request_body::Compact;
use crate::body_limit::{ResponseBodyLimit, ResponseBodyLimitBody};
use crate::deadline::{Deadline, DeadlineBody, DeadlineFuture};
use crate::drain::{DrainOnDrop, DrainOnDropBody};
use crate::limit::{
    AdaptiveLimit, AdaptiveLimitBody, AdaptiveLimitFuture, ConcurrencyLimit, LimitBody,
};
use crate::replay::Replay;
use crate::telemetry::{Telemetry, TelemetryBody, TelemetryFuture};
use crate::timeout::{
    BodyIdleTimeout, BodyIdleTimeoutBody, RequestWriteTimeout, RequestWriteTimeoutBody,
    ResponseHeaderTimeout,
};

/// The default stack around `S`.
pub(super) type Fast<S> = Fused<S>;

/// The response future of [`Fast`] for request bodies `B`.
pub(super) type FastFuture<S, B> = FusedFuture<S, B>;

/// The response body of [`Fast`] around the inner service's body `B`.
pub(super) type FastBody<B> = FusedBody<B>;

/// Everything inside the two limiters of [`Stack`], outer to inner. The replay sits inside the
/// limits and the deadline (a replay keeps both) and outside the phase timeouts.
pub(super) type Inner<S> = DrainOnDrop<
    ResponseBodyLimit<
        Replay<ResponseHeaderTimeout<BodyIdleTimeout<RequestWriteTimeout<Compact<S>>>>>,
    >,
>;

/// The layered stack around `S` (with an adaptive per-host limit), outer to inner.
pub(super) type Stack<S> = Telemetry<Deadline<AdaptiveLimit<ConcurrencyLimit<Inner<S>>>>>;

/// The response future of [`Stack`] for request bodies `B`.
pub(super) type StackFuture<S, B> =
    TelemetryFuture<DeadlineFuture<AdaptiveLimitFuture<ConcurrencyLimit<Inner<S>>, B>>>;

/// The response body of [`Stack`] around the inner service's body `B`: eight wrappers
/// (`Replay` and `ResponseHeaderTimeout` add none).
pub(super) type StackBody<B> = TelemetryBody<
    DeadlineBody<
        AdaptiveLimitBody<
            LimitBody<
                DrainOnDropBody<
                    ResponseBodyLimitBody<BodyIdleTimeoutBody<RequestWriteTimeoutBody<B>>>,
                >,
            >,
        >,
    >,
>;
