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
#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
pub mod pool;
pub mod stats;

#[cfg(test)]
mod test_util;

pub use crate::deadline::{Deadline, DeadlineBody, DeadlineFuture, DeadlineLayer, RequestDeadline};
pub use crate::error::{BoxError, Error, ErrorKind, Phase};
#[cfg(feature = "pool")]
#[cfg_attr(docsrs, doc(cfg(feature = "pool")))]
pub use crate::pool::{
    ConnectionInfo, PoolClient, PoolClientBuilder, PoolConnectFuture, PoolConnector,
    PoolConnectorLayer, PoolIo, Retire, RetireFuture, RetireLayer,
};
pub use crate::stats::{CloseReason, DrainAbandon, Stats, StatsSnapshot};
