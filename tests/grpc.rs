//! gRPC over real TCP: a tonic server-streaming RPC whose stream opens child spans of the
//! request span, and client spans on a tonic `Channel` that read the status from the
//! trailers, named after the method.

#![cfg(all(feature = "testing", feature = "axum"))]

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut};
use futures_util::{Stream, StreamExt};
use http::uri::PathAndQuery;
use serde_json::Value;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{NamedService, ServerStreamingService};
use tonic::transport::Server;
use tonic::{Code, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tower_opik::client::OpikClientLayer;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikFutureExt, OpikLayer, SpanType, current_span};

use common::{FLUSH, channel, store_for, tonic_listener};

/// UTF-8 strings as gRPC messages: a codec without protoc or prost.
#[derive(Clone, Copy, Debug, Default)]
struct Utf8;

impl Codec for Utf8 {
    type Encode = String;
    type Decode = String;
    type Encoder = Utf8;
    type Decoder = Utf8;
    fn encoder(&mut self) -> Utf8 {
        Utf8
    }
    fn decoder(&mut self) -> Utf8 {
        Utf8
    }
}

impl Encoder for Utf8 {
    type Item = String;
    type Error = Status;
    fn encode(&mut self, item: String, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(item.as_bytes());
        Ok(())
    }
}

impl Decoder for Utf8 {
    type Item = String;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<String>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

type TokenStream = Pin<Box<dyn Stream<Item = Result<String, Status>> + Send>>;

/// `test.Tokens/Generate`: streams three tokens; each is produced in an `llm` child span
/// opened while the response streams.
#[derive(Clone, Debug, Default)]
struct Tokens;

impl NamedService for Tokens {
    const NAME: &'static str = "test.Tokens";
}

struct Generate;

impl ServerStreamingService<String> for Generate {
    type Response = String;
    type ResponseStream = TokenStream;
    type Future = std::future::Ready<Result<tonic::Response<TokenStream>, Status>>;

    fn call(&mut self, request: tonic::Request<String>) -> Self::Future {
        let prompt = request.into_inner();
        let tokens = futures_util::stream::iter(0..3).then(move |i| {
            let prompt = prompt.clone();
            async move {
                tokio::task::yield_now().await;
                if prompt == "fail" && i == 1 {
                    // After a first message: the status can only go in the trailers.
                    return Err(Status::not_found("no such model"));
                }
                let llm = current_span().child_of_type(format!("token {i}"), SpanType::Llm);
                llm.set_input(serde_json::json!({ "prompt": prompt }));
                llm.end();
                Ok(format!("t{i}"))
            }
        });
        std::future::ready(Ok(tonic::Response::new(Box::pin(tokens) as TokenStream)))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Tokens {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(async move {
            if request.uri().path() != "/test.Tokens/Generate" {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let mut grpc = tonic::server::Grpc::new(Utf8);
            Ok(grpc.server_streaming(Generate, request).await)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_streaming_rpc_opens_child_spans_while_it_streams() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let (addr, incoming) = tonic_listener().await;
    tokio::spawn(
        Server::builder()
            .layer(OpikLayer::new(store.clone()))
            .add_service(Tokens)
            .serve_with_incoming(incoming),
    );
    let mut grpc = tonic::client::Grpc::new(channel(addr).await);
    grpc.ready().await.unwrap();
    let stream = grpc
        .server_streaming(
            tonic::Request::new("hi".to_owned()),
            PathAndQuery::from_static("/test.Tokens/Generate"),
            Utf8,
        )
        .await
        .unwrap()
        .into_inner();
    let tokens: Vec<String> = stream.map(Result::unwrap).collect().await;
    assert_eq!(tokens, ["t0", "t1", "t2"]);

    store.flush(FLUSH).await;
    let spans = opik.spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let request = spans
        .iter()
        .find(|s| s["name"] == "/test.Tokens/Generate")
        .unwrap();
    assert_eq!(request["metadata"]["rpc.grpc.status_code"], 0);
    assert!(request.get("error_info").is_none());
    for i in 0..3 {
        let token = spans
            .iter()
            .find(|s| s["name"] == format!("token {i}"))
            .unwrap();
        assert_eq!(token["parent_span_id"], request["id"], "{token:#}");
        assert_eq!(token["input"]["prompt"], "hi");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_client_spans_read_the_status_and_are_named_after_the_method() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let health = common::serving_health().await;
    let (addr, incoming) = tonic_listener().await;
    tokio::spawn(
        Server::builder()
            .layer(OpikLayer::new(store.clone()))
            .add_service(health)
            .add_service(Tokens)
            .serve_with_incoming(incoming),
    );
    let channel = ServiceBuilder::new()
        .layer(OpikClientLayer::new().client_spans(true))
        .service(channel(addr).await);
    let mut client = HealthClient::new(channel.clone());
    let mut grpc = tonic::client::Grpc::new(channel);
    let root = store.root_span("caller");
    async {
        grpc.ready().await.unwrap();
        let mut stream = grpc
            .server_streaming(
                tonic::Request::new("fail".to_owned()),
                PathAndQuery::from_static("/test.Tokens/Generate"),
                Utf8,
            )
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stream.next().await.unwrap().unwrap(), "t0");
        let status = stream.next().await.unwrap().unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert!(stream.next().await.is_none());
        client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        let missing = client
            .check(HealthCheckRequest {
                service: "nope".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
    }
    .in_span(root.clone())
    .await;
    root.end();
    store.flush(FLUSH).await;

    let spans = opik.spans();
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == root.id().unwrap().to_string())
        .collect();
    assert_eq!(children.len(), 3, "{spans:#?}");
    // A stream that failed after a first message: the status came in the trailers.
    let streamed = children
        .iter()
        .find(|c| c["name"] == "test.Tokens/Generate")
        .unwrap();
    assert_eq!(streamed["metadata"]["http.response.status_code"], 200);
    assert_eq!(streamed["metadata"]["rpc.grpc.status_code"], 5);
    assert_eq!(streamed["metadata"]["rpc.method"], "Generate");
    assert_eq!(
        streamed["error_info"]["exception_type"],
        "GrpcStatusNotFound"
    );
    assert_eq!(streamed["error_info"]["message"], "no such model");
    let clients: Vec<&&Value> = children
        .iter()
        .filter(|c| c["name"] != "test.Tokens/Generate")
        .collect();
    for client in &clients {
        assert_eq!(client["name"], "grpc.health.v1.Health/Check");
        assert_eq!(client["metadata"]["rpc.system"], "grpc");
        assert_eq!(client["metadata"]["rpc.service"], "grpc.health.v1.Health");
        assert_eq!(client["metadata"]["rpc.method"], "Check");
    }
    let ok = clients
        .iter()
        .find(|c| c["metadata"]["rpc.grpc.status_code"] == 0)
        .unwrap();
    assert!(ok.get("error_info").is_none(), "{ok:#}");
    let failed = clients
        .iter()
        .find(|c| c["metadata"]["rpc.grpc.status_code"] == 5)
        .unwrap();
    assert_eq!(failed["error_info"]["exception_type"], "GrpcStatusNotFound");
    assert_eq!(failed["error_info"]["message"], "service not registered");
    // The server spans are children of the client spans.
    for client in &clients {
        let server = spans
            .iter()
            .find(|s| s["parent_span_id"] == client["id"])
            .expect("a server span under each client span");
        assert_eq!(server["name"], "/grpc.health.v1.Health/Check");
    }
}
