//! Tower layers that make any HTTP client leak-proof.
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod clock;
pub mod deadline;
mod error;
pub mod stats;
#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub mod timeout;

#[cfg(test)]
mod test_util;

pub use crate::deadline::{Deadline, DeadlineBody, DeadlineFuture, DeadlineLayer, RequestDeadline};
pub use crate::error::{BoxError, Error, ErrorKind, Phase};
pub use crate::stats::{CloseReason, DrainAbandon, Stats, StatsSnapshot};
#[cfg(feature = "timeout")]
#[cfg_attr(docsrs, doc(cfg(feature = "timeout")))]
pub use crate::timeout::{
    ConnectTimeout, ConnectTimeoutFuture, ConnectTimeoutLayer, TlsHandshakeTimeout,
    TlsHandshakeTimeoutFuture, TlsHandshakeTimeoutLayer,
};
