//! What counts as a failure, over real TCP: the default classifier (HTTP 5xx, every gRPC
//! status but OK), a classifier that takes `NotFound` for an answer and 4xx for failures, on
//! the server layer and the client spans; and a gRPC request answered by something that is
//! not gRPC, whose `grpc-status` trailer means nothing.
#![cfg(all(feature = "testing", feature = "axum", feature = "reqwest-middleware"))]

mod common;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http_body::Frame;
use http_body_util::StreamBody;
use serde_json::Value;
use tonic::Code;
use tonic::transport::Server;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower_opik::classify::{FailureClassifier, GrpcCode};
use tower_opik::client::{OpikClientLayer, OpikMiddleware};
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikFutureExt, OpikLayer};

use common::{flushed, http_client, serve, store_for, tonic_listener};

fn lookups() -> FailureClassifier {
    FailureClassifier::new()
        .grpc_with_success(GrpcCode::NotFound)
        .http_failures(400..=599)
}

fn error_type(span: &Value) -> Option<&str> {
    span.get("error_info")
        .map(|e| e["exception_type"].as_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_code_named_a_success_is_no_error_on_either_side() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let mut servers = Vec::new();
    for classifier in [FailureClassifier::new(), lookups()] {
        let (addr, incoming) = tonic_listener().await;
        tokio::spawn(
            Server::builder()
                .layer(
                    OpikLayer::new(store.clone())
                        .project_name(if classifier == lookups() {
                            "lookups"
                        } else {
                            "default"
                        })
                        .failure_classifier(classifier),
                )
                .add_service(common::serving_health().await)
                .serve_with_incoming(incoming),
        );
        servers.push((addr, classifier));
    }
    let root = store.root_span("caller");
    async {
        for (addr, classifier) in &servers {
            let channel = ServiceBuilder::new()
                .layer(
                    OpikClientLayer::new()
                        .client_spans(true)
                        .failure_classifier(*classifier),
                )
                .service(common::channel(*addr).await);
            let status = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: "nope".into(),
                })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::NotFound);
        }
    }
    .in_span(root.clone())
    .await;
    root.end();
    flushed(&store).await;
    let spans = opik.spans();
    let servers: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "/grpc.health.v1.Health/Check")
        .collect();
    let clients: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "grpc.health.v1.Health/Check")
        .collect();
    assert_eq!((servers.len(), clients.len()), (2, 2), "{spans:#?}");
    for s in servers.iter().chain(&clients) {
        assert_eq!(s["metadata"]["rpc.grpc.status_code"], 5, "{s:#}");
    }
    let by_project = |project: &str| {
        servers
            .iter()
            .find(|s| s["project_name"] == project)
            .copied()
            .unwrap()
    };
    assert_eq!(
        error_type(by_project("default")),
        Some("GrpcStatusNotFound")
    );
    assert_eq!(error_type(by_project("lookups")), None);
    // The client spans, in call order: the default first.
    assert_eq!(error_type(clients[0]), Some("GrpcStatusNotFound"));
    assert_eq!(error_type(clients[1]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_statuses_in_the_chosen_range_are_failures() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let routes = || {
        Router::new()
            .route(
                "/missing",
                get(|| async { (http::StatusCode::NOT_FOUND, "no") }),
            )
            .route(
                "/broken",
                get(|| async { (http::StatusCode::BAD_GATEWAY, "no") }),
            )
    };
    let default =
        serve(routes().layer(OpikLayer::new(store.clone()).project_name("default"))).await;
    let strict = serve(
        routes().layer(
            OpikLayer::new(store.clone())
                .project_name("strict")
                .failure_classifier(lookups()),
        ),
    )
    .await;
    let client = reqwest_middleware::ClientBuilder::new(http_client())
        .with(
            OpikMiddleware::new()
                .client_spans(true)
                .failure_classifier(lookups()),
        )
        .build();
    let root = store.root_span("caller");
    async {
        for addr in [default, strict] {
            for path in ["missing", "broken"] {
                client
                    .get(format!("http://{addr}/{path}"))
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    .in_span(root.clone())
    .await;
    root.end();
    flushed(&store).await;
    let spans = opik.spans();
    let server = |project: &str, name: &str| {
        let s = spans
            .iter()
            .find(|s| s["project_name"] == project && s["name"] == name)
            .unwrap_or_else(|| panic!("{project} {name}: {spans:#?}"));
        error_type(s)
    };
    assert_eq!(server("default", "GET /missing"), None);
    assert_eq!(server("default", "GET /broken"), Some("HttpServerError"));
    assert_eq!(server("strict", "GET /missing"), Some("HttpStatusError"));
    assert_eq!(server("strict", "GET /broken"), Some("HttpServerError"));
    let client_errors: Vec<Option<&str>> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == root.id().unwrap().to_string().as_str())
        .map(error_type)
        .collect();
    assert_eq!(
        client_errors,
        [
            Some("HttpStatusError"),
            Some("HttpServerError"),
            Some("HttpStatusError"),
            Some("HttpServerError")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_status_trailer_on_an_answer_that_is_not_grpc_is_ignored() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    // A fallback answering a gRPC request with a page, whose body ends with trailers that
    // happen to say `grpc-status: 13`.
    let page = || async {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "13".parse().unwrap());
        trailers.insert("grpc-message", "not%20grpc".parse().unwrap());
        let frames = futures_util::stream::iter([
            Ok::<_, std::convert::Infallible>(Frame::data(bytes::Bytes::from_static(b"a page"))),
            Ok(Frame::trailers(trailers)),
        ]);
        http::Response::builder()
            .header("content-type", "text/plain")
            .body(Body::new(StreamBody::new(frames)))
            .unwrap()
    };
    let addr = serve(
        Router::new()
            .route("/pkg.Svc/Call", post(page))
            .layer(OpikLayer::new(store.clone())),
    )
    .await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let answer = client
        .post(format!("http://{addr}/pkg.Svc/Call"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(vec![0u8, 0, 0, 0, 0])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "a page");
    flushed(&store).await;
    let span = common::span_named(&opik, "/pkg.Svc/Call");
    assert_eq!(error_type(&span), None, "{span:#}");
    assert!(
        span["metadata"].get("rpc.grpc.status_code").is_none(),
        "{span:#}"
    );
}
