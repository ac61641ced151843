use tower_layer::Layer;

use super::{BoxRequestBody, Grpc};
use crate::preset::{HardenedLayer, HardenedService};

/// The service [`GrpcLayer`] makes around `S` (a tonic `Channel`, say).
pub type HardenedGrpc<S> = Grpc<HardenedService<BoxRequestBody<S>>>;

/// The request-side stack of a [`Hardened`](crate::Hardened) preset for a gRPC service, made by
/// [`Hardened::grpc_layer`](crate::Hardened::grpc_layer): `Grpc → Hardened's stack (the time
/// left sent as grpc-timeout) → BoxRequestBody → S`.
///
/// # Example
///
/// ```
/// use tonic::transport::Endpoint;
/// use tower_hardened::Hardened;
/// use tower_layer::Layer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let hardened = Hardened::new();
/// let channel = Endpoint::from_static("http://127.0.0.1:50051")
///     .connect_with_connector_lazy(hardened.grpc_connector());
/// let channel = hardened.grpc_layer().layer(channel);
/// // tonic_health::pb::health_client::HealthClient::new(channel), or any generated client.
/// # let _ = channel; }
/// ```
#[derive(Debug, Clone)]
pub struct GrpcLayer {
    stack: HardenedLayer,
}

impl GrpcLayer {
    pub(crate) fn new(stack: HardenedLayer) -> Self {
        GrpcLayer { stack }
    }
}

impl<S> Layer<S> for GrpcLayer {
    type Service = HardenedGrpc<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Grpc::new(self.stack.layer(BoxRequestBody::new(inner)))
    }
}
