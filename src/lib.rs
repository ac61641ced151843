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
#[cfg(feature = "drain")]
#[cfg_attr(docsrs, doc(cfg(feature = "drain")))]
pub mod drain;
mod error;
pub mod stats;

#[cfg(test)]
mod test_util;

pub use crate::deadline::{Deadline, DeadlineBody, DeadlineFuture, DeadlineLayer, RequestDeadline};
#[cfg(feature = "drain")]
#[cfg_attr(docsrs, doc(cfg(feature = "drain")))]
pub use crate::drain::{DrainOnDrop, DrainOnDropBody, DrainOnDropFuture, DrainOnDropLayer};
pub use crate::error::{BoxError, Error, ErrorKind, Phase};
pub use crate::stats::{CloseReason, DrainAbandon, Stats, StatsSnapshot};
