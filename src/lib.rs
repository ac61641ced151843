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
#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub mod limit;
pub mod stats;

#[cfg(test)]
mod test_util;

pub use crate::deadline::{Deadline, DeadlineBody, DeadlineFuture, DeadlineLayer, RequestDeadline};
pub use crate::error::{BoxError, Error, ErrorKind, Phase};
#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub use crate::limit::{
    ConcurrencyLimit, ConcurrencyLimitLayer, LimitBody, LimitFuture, LimitHandle, PerHostHandle,
    PerHostLimit, PerHostLimitLayer,
};
pub use crate::stats::{CloseReason, DrainAbandon, Stats, StatsSnapshot};
