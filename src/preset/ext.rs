//! [`ServiceBuilderExt`]: the layers of this crate as `ServiceBuilder` methods.

use std::time::Duration;

use super::{Hardened, HardenedLayer};
use crate::body_limit::ResponseBodyLimitLayer;
use crate::deadline::DeadlineLayer;
use crate::drain::DrainOnDropLayer;
use crate::limit::{ConcurrencyLimitLayer, PerHostLimitLayer};
use crate::timeout::{BodyIdleTimeoutLayer, RequestWriteTimeoutLayer, ResponseHeaderTimeoutLayer};

/// Adds this crate's layers to [`tower::ServiceBuilder`], one method each, for those who
/// compose by hand. Sealed: only `ServiceBuilder` implements it.
///
/// The names differ from tower's own `ServiceBuilder` methods (`concurrency_limit`, `timeout`)
/// on purpose: inherent methods would win and silently give tower's semantics.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use tower_hardened::ServiceBuilderExt;
///
/// let builder = ServiceBuilder::new()
///     .deadline(Duration::from_secs(30))
///     .held_concurrency_limit(64)
///     .per_host_limit(8)
///     .drain_on_drop()
///     .response_header_timeout(Duration::from_secs(10))
///     .body_idle_timeout(Duration::from_secs(30))
///     .request_write_timeout(Duration::from_secs(10));
/// # let _ = builder;
/// ```
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Adds a [`DeadlineLayer`].
    fn deadline(
        self,
        budget: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<DeadlineLayer, L>>;
    /// Adds a [`ConcurrencyLimitLayer`] (the permit is held until the body ends).
    fn held_concurrency_limit(
        self,
        max: usize,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ConcurrencyLimitLayer, L>>;
    /// Adds a [`PerHostLimitLayer`].
    fn per_host_limit(
        self,
        max_per_host: usize,
    ) -> tower::ServiceBuilder<tower_layer::Stack<PerHostLimitLayer, L>>;
    /// Adds a [`DrainOnDropLayer`] with its defaults.
    fn drain_on_drop(self) -> tower::ServiceBuilder<tower_layer::Stack<DrainOnDropLayer, L>>;
    /// Adds a [`ResponseBodyLimitLayer`].
    fn response_body_limit(
        self,
        max: u64,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ResponseBodyLimitLayer, L>>;
    /// Adds a [`ResponseHeaderTimeoutLayer`].
    fn response_header_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ResponseHeaderTimeoutLayer, L>>;
    /// Adds a [`BodyIdleTimeoutLayer`].
    fn body_idle_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<BodyIdleTimeoutLayer, L>>;
    /// Adds a [`RequestWriteTimeoutLayer`].
    fn request_write_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<RequestWriteTimeoutLayer, L>>;
    /// Adds the whole request-side stack of a [`Hardened`] preset.
    fn hardened(
        self,
        preset: &Hardened,
    ) -> tower::ServiceBuilder<tower_layer::Stack<HardenedLayer, L>>;
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

impl<L> ServiceBuilderExt<L> for tower::ServiceBuilder<L> {
    fn deadline(
        self,
        budget: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<DeadlineLayer, L>> {
        self.layer(DeadlineLayer::new(budget))
    }
    fn held_concurrency_limit(
        self,
        max: usize,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ConcurrencyLimitLayer, L>> {
        self.layer(ConcurrencyLimitLayer::new(max))
    }
    fn per_host_limit(
        self,
        max_per_host: usize,
    ) -> tower::ServiceBuilder<tower_layer::Stack<PerHostLimitLayer, L>> {
        self.layer(PerHostLimitLayer::new(max_per_host))
    }
    fn drain_on_drop(self) -> tower::ServiceBuilder<tower_layer::Stack<DrainOnDropLayer, L>> {
        self.layer(DrainOnDropLayer::new())
    }
    fn response_body_limit(
        self,
        max: u64,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ResponseBodyLimitLayer, L>> {
        self.layer(ResponseBodyLimitLayer::new(max))
    }
    fn response_header_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<ResponseHeaderTimeoutLayer, L>> {
        self.layer(ResponseHeaderTimeoutLayer::new(limit))
    }
    fn body_idle_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<BodyIdleTimeoutLayer, L>> {
        self.layer(BodyIdleTimeoutLayer::new(limit))
    }
    fn request_write_timeout(
        self,
        limit: Duration,
    ) -> tower::ServiceBuilder<tower_layer::Stack<RequestWriteTimeoutLayer, L>> {
        self.layer(RequestWriteTimeoutLayer::new(limit))
    }
    fn hardened(
        self,
        preset: &Hardened,
    ) -> tower::ServiceBuilder<tower_layer::Stack<HardenedLayer, L>> {
        self.layer(preset.layer())
    }
}
