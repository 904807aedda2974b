//! `OpikLayer` on real gRPC: a tonic server (tonic-health, no protoc needed) called by a
//! tonic client over TCP, with statuses in headers and, as usual, in trailers.

#![cfg(all(feature = "testing", feature = "axum"))]

mod common;

use axum::body::Body;
use http::{HeaderMap, HeaderValue};
use tonic::Code;
use tonic::transport::Server;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_opik::OpikLayer;
use tower_opik::testing::LocalOpik;

use common::{FLUSH, channel, store_for, tonic_listener};

#[tokio::test]
async fn tonic_calls_are_traced_with_their_grpc_status() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let health = common::serving_health().await;
    let (addr, incoming) = tonic_listener().await;
    tokio::spawn(
        Server::builder()
            .layer(OpikLayer::new(store.clone()))
            .add_service(health)
            .serve_with_incoming(incoming),
    );
    let mut client = HealthClient::new(channel(addr).await);
    let ok = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(ok.into_inner().status, 1); // SERVING
    let missing = client
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    let report = store.flush(FLUSH).await;
    assert_eq!(report.stats.sent, 4, "{report}"); // two spans, two traces
    let spans = opik.spans();
    assert_eq!(spans.len(), 2);
    for span in &spans {
        assert_eq!(span["name"], "/grpc.health.v1.Health/Check");
        assert_eq!(span["metadata"]["rpc.system"], "grpc");
    }
    // OK: grpc-status 0 arrives in the trailers.
    assert_eq!(spans[0]["metadata"]["rpc.grpc.status_code"], 0);
    assert!(spans[0].get("error_info").is_none());
    // NotFound: a trailers-only answer, the status in the headers.
    assert_eq!(spans[1]["metadata"]["rpc.grpc.status_code"], 5);
    assert_eq!(
        spans[1]["error_info"]["exception_type"],
        "GrpcStatusNotFound"
    );
    assert_eq!(spans[1]["error_info"]["message"], "service not registered");
}

/// A gRPC endpoint that answers 200 with headers, then an error status in the trailers: the
/// usual shape of a failed streaming call, which header-only tracing records as OK.
#[tokio::test]
async fn an_error_status_in_the_trailers_is_recorded() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let handler = || async {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("13"));
        trailers.insert("grpc-message", HeaderValue::from_static("model%20crashed"));
        let frames = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
            http_body::Frame::trailers(trailers),
        )]);
        http::Response::builder()
            .header("content-type", "application/grpc")
            .body(Body::new(http_body_util::StreamBody::new(frames)))
            .unwrap()
    };
    let app = axum::Router::new()
        .route("/grpc.health.v1.Health/Check", axum::routing::post(handler))
        .layer(OpikLayer::new(store.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut client = HealthClient::new(channel(addr).await);
    let err = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal);
    assert_eq!(err.message(), "model crashed");

    store.flush(FLUSH).await;
    let spans = opik.spans();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0]["name"], "/grpc.health.v1.Health/Check");
    assert_eq!(spans[0]["metadata"]["http.response.status_code"], 200);
    assert_eq!(spans[0]["metadata"]["rpc.grpc.status_code"], 13);
    assert_eq!(
        spans[0]["error_info"]["exception_type"],
        "GrpcStatusInternal"
    );
    assert_eq!(spans[0]["error_info"]["message"], "model crashed");
}
