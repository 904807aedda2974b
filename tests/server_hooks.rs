//! `OpikLayer::on_request`, `on_response` and `on_failure`, over loopback with LocalOpik: a
//! tenant header recorded without touching handlers, a 200 redefined as a failure from its
//! headers, and every failure seen once with its error.
#![cfg(all(feature = "testing", feature = "axum"))]

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use http::StatusCode;
use tower_opik::testing::LocalOpik;
use tower_opik::{ErrorInfo, OpikLayer, current_span};

use common::{flushed, http_client, serve, span_named, store_for};

#[tokio::test]
async fn hooks_see_the_request_head_the_response_parts_and_each_failure_once() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = failures.clone();
    let app = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/degraded",
            get(|| async { ([("x-degraded", "fallback")], "from the fallback model") }),
        )
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/refused",
            get(|| async {
                current_span().set_error(ErrorInfo::new("PolicyRefusal", "refused by the policy"));
                "sorry"
            }),
        )
        .layer(
            OpikLayer::new(store.clone())
                .on_request(|head, span| {
                    if let Some(tenant) = head.headers().get("x-tenant") {
                        span.set_metadata("tenant", tenant.to_str().unwrap_or("?"));
                    }
                })
                .on_response(|parts, span| {
                    span.set_metadata("status_seen", parts.status.as_u16());
                    if let Some(why) = parts.headers.get("x-degraded") {
                        span.set_error(ErrorInfo::new(
                            "Degraded",
                            format!("answered by {}", why.to_str().unwrap_or("?")),
                        ));
                    }
                })
                .on_failure(move |error, span| {
                    span.set_metadata("failure_seen", true);
                    seen.lock().unwrap().push(error.exception_type().to_owned());
                }),
        );
    let addr = serve(app).await;
    let client = http_client();
    for path in ["/ok", "/degraded", "/boom", "/refused"] {
        client
            .get(format!("http://{addr}{path}"))
            .header("x-tenant", "acme")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    flushed(&store).await;

    let ok = span_named(&opik, "GET /ok");
    assert_eq!(ok["metadata"]["tenant"], "acme");
    assert_eq!(ok["metadata"]["status_seen"], 200);
    assert!(ok.get("error_info").is_none(), "{ok}");
    assert!(ok["metadata"].get("failure_seen").is_none(), "{ok}");

    let degraded = span_named(&opik, "GET /degraded");
    assert_eq!(degraded["error_info"]["exception_type"], "Degraded");
    assert_eq!(degraded["error_info"]["message"], "answered by fallback");
    assert_eq!(degraded["metadata"]["failure_seen"], true);

    let boom = span_named(&opik, "GET /boom");
    assert_eq!(boom["error_info"]["exception_type"], "HttpServerError");
    assert_eq!(boom["metadata"]["tenant"], "acme");
    assert_eq!(
        span_named(&opik, "GET /refused")["metadata"]["failure_seen"],
        true
    );

    let mut failures = failures.lock().unwrap().clone();
    failures.sort();
    assert_eq!(failures, ["Degraded", "HttpServerError", "PolicyRefusal"]);
}

#[tokio::test]
async fn hooks_are_not_called_for_requests_not_traced() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let calls: Arc<Mutex<u32>> = Arc::default();
    let (a, b) = (calls.clone(), calls.clone());
    let app = Router::new()
        .route(
            "/health",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
        )
        .layer(
            OpikLayer::new(store.clone())
                .skip(|head| head.uri().path() == "/health")
                .on_request(move |_, _| *a.lock().unwrap() += 1)
                .on_failure(move |_, _| *b.lock().unwrap() += 1),
        );
    let addr = serve(app).await;
    let status = http_client()
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    flushed(&store).await;
    assert_eq!(*calls.lock().unwrap(), 0);
    assert!(opik.spans().is_empty());
}

#[tokio::test]
async fn a_hook_that_panics_never_takes_the_request_or_the_process_down() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let current_in_hooks: Arc<Mutex<Vec<bool>>> = Arc::default();
    let (seen_req, seen_res) = (current_in_hooks.clone(), current_in_hooks.clone());
    let app = Router::new()
        .route("/request", get(|| async { "fine" }))
        .route("/response", get(|| async { "fine" }))
        .route(
            "/failure",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(
            OpikLayer::new(store.clone())
                .on_request(move |head, span| {
                    seen_req
                        .lock()
                        .unwrap()
                        .push(current_span().id() == span.id());
                    if head.uri().path() == "/request" {
                        panic!("a bug in my on_request");
                    }
                })
                .on_response(move |_, span| {
                    seen_res
                        .lock()
                        .unwrap()
                        .push(current_span().id() == span.id());
                })
                .on_failure(|_, _| panic!("a bug in my on_failure")),
        );
    let addr = serve(app).await;
    let client = http_client();
    for (path, status) in [
        ("/request", StatusCode::OK),
        ("/failure", StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let answer = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{path} answered");
        answer.text().await.unwrap();
    }
    flushed(&store).await;
    let request = span_named(&opik, "GET /request");
    assert_eq!(request["error_info"]["exception_type"], "Panic");
    // (Then `on_failure` saw that error, and panicked too: the last panic's message.)
    assert!(
        request["error_info"]["message"]
            .as_str()
            .unwrap()
            .contains("a bug in my on_"),
        "{request}"
    );
    let failure = span_named(&opik, "GET /failure");
    assert!(failure.get("error_info").is_some(), "{failure}");
    assert!(
        current_in_hooks
            .lock()
            .unwrap()
            .iter()
            .all(|current| *current),
        "hooks run with the request's span current"
    );
}
