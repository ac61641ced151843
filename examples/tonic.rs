//! A tonic channel with the preset's stack (feature `tonic`): every failure a `tonic::Status`
//! with a real gRPC code, the deadline sent as `grpc-timeout`.
//!
//! Starts its own tonic server on 127.0.0.1 implementing tonic-health's `Health` service: the
//! service name `stall` never answers; `watch` sends an update every 100 ms.
//!
//! ```text
//! cargo run --example tonic --features tonic
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_stream::Stream;
use tonic::transport::Endpoint;
use tonic::Status;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower_hardened::{Error, Hardened, RequestBudget};
use tower_layer::Layer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = server().await?;

    let hardened = Hardened::new()
        .total(Duration::from_secs(2))
        .response_headers(Duration::from_millis(500));
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_with_connector_lazy(hardened.grpc_connector());
    let mut client = HealthClient::new(hardened.grpc_layer().layer(channel));

    let ok = client.check(ask("")).await?.into_inner();
    println!("check: {:?}", ok.status());

    let status = client.check(ask("stall")).await.unwrap_err();
    println!(
        "check(stall): {:?} {:?} (phase {:?})",
        status.code(),
        status.message(),
        Error::find(&status).and_then(Error::phase)
    );

    // A watch: cut at the preset's total of 2 s ...
    let mut updates = client.watch(ask("")).await?.into_inner();
    let mut n = 0;
    let status = loop {
        match updates.message().await {
            Ok(Some(_)) => n += 1,
            Ok(None) => break Status::ok("ended"),
            Err(status) => break status,
        }
    };
    println!(
        "watch: {n} updates, then {:?}: {}",
        status.code(),
        status.message()
    );

    // ... unless the call has a budget of its own.
    let mut req = tonic::Request::new(ask(""));
    req.extensions_mut()
        .insert(RequestBudget::new(Duration::from_secs(3600)));
    let mut updates = client.watch(req).await?.into_inner();
    for _ in 0..25 {
        updates.message().await?;
    }
    println!("watch with a 1 h budget: 25 updates in 2.5 s, still going");
    Ok(())
}

fn ask(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

struct Misbehaving;

#[tonic::async_trait]
impl Health for Misbehaving {
    async fn check(
        &self,
        req: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, Status> {
        println!(
            "  server: check({:?}), grpc-timeout {:?}",
            req.get_ref().service,
            req.metadata().get("grpc-timeout")
        );
        if req.get_ref().service == "stall" {
            std::future::pending::<()>().await;
        }
        Ok(tonic::Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    type WatchStream = Every;

    async fn watch(
        &self,
        _req: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<Every>, Status> {
        Ok(tonic::Response::new(Every(tokio::time::interval(
            Duration::from_millis(100),
        ))))
    }
}

/// An update every tick, forever.
struct Every(tokio::time::Interval);

impl Stream for Every {
    type Item = Result<HealthCheckResponse, Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_tick(cx).map(|_| {
            Some(Ok(HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            }))
        })
    }
}

async fn server() -> Result<std::net::SocketAddr, Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(Misbehaving))
            .serve_with_incoming(incoming),
    );
    Ok(addr)
}
