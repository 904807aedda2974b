//! Client-side propagation over real TCP: reqwest-middleware and the tower client layer
//! (tonic), the allow-list, per-request overrides, baggage, spawned tasks, the scope helper.
#![cfg(all(feature = "testing", feature = "axum", feature = "reqwest-middleware"))]

mod common;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use serde_json::Value;
use tonic::transport::Server;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower_opik::client::{ClientSpanName, OpikClientLayer, OpikMiddleware, Propagation};
use tower_opik::server::OpikSpan;
use tower_opik::testing::LocalOpik;
use tower_opik::{DistributedHeaders, DistributedScope, OpikFutureExt, OpikLayer, SpanStore};

use common::{FLUSH, http_client, serve, store_for};

fn client(middleware: OpikMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(http_client()).with(middleware).build()
}

/// A service that answers with the Opik headers it received (no layer: raw headers).
async fn echo_headers(headers: HeaderMap) -> String {
    ["opik_trace_id", "opik_parent_span_id", "baggage"]
        .iter()
        .map(|h| {
            format!(
                "{h}={}",
                headers.get(*h).and_then(|v| v.to_str().ok()).unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn leaf(store: &SpanStore) -> Router {
    Router::new()
        .route("/leaf", get(|| async { "leaf" }))
        .layer(OpikLayer::new(store.clone()))
}

fn by_name<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {spans:#?}"))
}

#[tokio::test]
async fn server_spans_nest_under_the_calling_span() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let addr = serve(leaf(&store)).await;
    for client_spans in [false, true] {
        let http = client(OpikMiddleware::new().client_spans(client_spans));
        let root = store.root_span(format!("caller {client_spans}"));
        async {
            // Two ids in the path, one span name: method and host.
            for id in [41, 42] {
                let resp = http
                    .get(format!("http://{addr}/leaf?q={id}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.text().await.unwrap(), "leaf");
            }
            // A name the caller sets for one request, as reqwest-tracing's OtelName.
            http.get(format!("http://{addr}/leaf"))
                .with_extension(ClientSpanName::new("leaf lookup"))
                .send()
                .await
                .unwrap();
        }
        .in_span(root.clone())
        .await;
        root.end();
        store.flush(FLUSH).await;
        let spans = opik.spans_of_trace(root.trace_id().unwrap().to_string());
        let server = by_name(&spans, "GET /leaf");
        if client_spans {
            let named = |name: &str| spans.iter().filter(|s| s["name"] == name).count();
            assert_eq!(named("GET 127.0.0.1"), 2, "{spans:#?}");
            assert_eq!(named("leaf lookup"), 1, "{spans:#?}");
            let clients: Vec<&Value> = spans
                .iter()
                .filter(|s| s["parent_span_id"] == root.id().unwrap().to_string())
                .collect();
            assert_eq!(clients.len(), 3, "{spans:#?}");
            for client_span in clients {
                let server = spans
                    .iter()
                    .find(|s| s["parent_span_id"] == client_span["id"])
                    .expect("a server span under each client span");
                assert_eq!(server["name"], "GET /leaf");
                assert_eq!(client_span["metadata"]["http.response.status_code"], 200);
                assert!(
                    client_span["metadata"]["url.full"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("http://{addr}/leaf")),
                    "{client_span:#}"
                );
                // Never the query (it can hold user data).
                assert!(
                    !client_span["metadata"]["url.full"]
                        .as_str()
                        .unwrap()
                        .contains('?')
                );
            }
        } else {
            assert_eq!(server["parent_span_id"], root.id().unwrap().to_string());
        }
        assert_eq!(
            opik.traces()
                .iter()
                .filter(|t| t["id"] == root.trace_id().unwrap().to_string())
                .count(),
            1
        );
    }
}

#[derive(Clone)]
struct Hop {
    next: Option<String>,
    http: ClientWithMiddleware,
}

async fn hop(State(hop): State<Hop>, OpikSpan(span): OpikSpan) -> String {
    span.set_metadata("hop", true);
    match &hop.next {
        Some(url) => hop
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        None => "end".to_owned(),
    }
}

#[tokio::test]
async fn a_chain_of_three_services_is_one_trace() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let http = client(OpikMiddleware::new());
    let service = |name: &'static str, next: Option<String>| {
        Router::new()
            .route("/hop", get(hop))
            .with_state(Hop {
                next,
                http: http.clone(),
            })
            .layer(OpikLayer::new(store.with_project_name(name)).span_name(move |_| name.into()))
    };
    let c = serve(service("C", None)).await;
    let b = serve(service("B", Some(format!("http://{c}/hop")))).await;
    let a = serve(service("A", Some(format!("http://{b}/hop")))).await;
    // The outside caller sends no headers: A starts the trace.
    let answer = http_client()
        .get(format!("http://{a}/hop"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(answer, "end");
    common::until(|| store.stats().recorded >= 4).await;
    store.flush(FLUSH).await;
    let spans = opik.spans();
    let (sa, sb, sc) = (
        by_name(&spans, "A"),
        by_name(&spans, "B"),
        by_name(&spans, "C"),
    );
    assert_eq!(sa["trace_id"], sb["trace_id"]);
    assert_eq!(sb["trace_id"], sc["trace_id"]);
    assert!(sa.get("parent_span_id").is_none());
    assert_eq!(sb["parent_span_id"], sa["id"]);
    assert_eq!(sc["parent_span_id"], sb["id"]);
    let traces = opik.traces();
    assert_eq!(
        traces.len(),
        1,
        "only A, which started the trace, writes it"
    );
    assert_eq!(traces[0]["id"], sa["trace_id"]);
    let tree = opik.trace_tree(sa["trace_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        tree.roots()[0].children()[0].children()[0].name(),
        "C",
        "{tree}"
    );
}

#[tokio::test]
async fn a_tonic_client_propagates_to_a_tonic_server() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let health = common::serving_health().await;
    let (addr, incoming) = common::tonic_listener().await;
    tokio::spawn(
        Server::builder()
            .layer(OpikLayer::new(store.clone()))
            .add_service(health)
            .serve_with_incoming(incoming),
    );
    let channel = common::channel(addr).await;
    let channel = tower::ServiceBuilder::new()
        .layer(OpikClientLayer::new().client_spans(true))
        .service(channel);
    let mut grpc = HealthClient::new(channel);
    let root = store.root_span("grpc caller");
    async {
        grpc.check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
    }
    .in_span(root.clone())
    .await;
    root.end();
    store.flush(FLUSH).await;
    let spans = opik.spans_of_trace(root.trace_id().unwrap().to_string());
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let child_of = |id: &Value| spans.iter().find(|s| s["parent_span_id"] == *id).unwrap();
    let client_span = child_of(&Value::from(root.id().unwrap().to_string()));
    let server = child_of(&client_span["id"]);
    assert_eq!(client_span["name"], "grpc.health.v1.Health/Check");
    assert_eq!(server["name"], "/grpc.health.v1.Health/Check");
    assert_eq!(server["metadata"]["rpc.system"], "grpc");
    assert_eq!(server["metadata"]["rpc.grpc.status_code"], 0);
}

#[tokio::test]
async fn the_allow_list_and_per_request_overrides_hold() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let addr = serve(Router::new().route("/echo", get(echo_headers))).await;
    let url = format!("http://{addr}/echo");
    let root = store.root_span("caller");
    let (t, s) = (root.trace_id().unwrap(), root.id().unwrap());
    let got = async {
        let open = client(OpikMiddleware::new());
        let localhost_only = client(OpikMiddleware::new().allow_hosts(["localhost", "*.internal"]));
        let loopback = client(
            OpikMiddleware::new()
                .allow_hosts(["127.0.0.1"])
                .send_baggage(true),
        );
        let forced =
            DistributedHeaders::new(tower_opik::id::new_id(), Some(tower_opik::id::new_id()));
        let text = |r: reqwest_middleware::RequestBuilder| async move {
            r.send().await.unwrap().text().await.unwrap()
        };
        [
            text(open.get(&url)).await,
            text(localhost_only.get(&url)).await,
            text(
                loopback
                    .get(&url)
                    .header("baggage", "user=alice,opik.trace_id=stale"),
            )
            .await,
            text(open.get(&url).with_extension(Propagation::Disabled)).await,
            text(open.get(&url).with_extension(Propagation::Parent(forced))).await,
            format!("{} {}", forced.trace_id(), forced.parent_span_id().unwrap()),
        ]
    }
    .in_span(root.clone())
    .await;
    assert_eq!(
        got[0],
        format!("opik_trace_id={t} opik_parent_span_id={s} baggage=-")
    );
    assert_eq!(
        got[1], "opik_trace_id=- opik_parent_span_id=- baggage=-",
        "127.0.0.1 is not allowed"
    );
    assert_eq!(
        got[2],
        format!(
            "opik_trace_id={t} opik_parent_span_id={s} baggage=user=alice,opik.trace_id={t},opik.span_id={s}"
        )
    );
    assert_eq!(got[3], "opik_trace_id=- opik_parent_span_id=- baggage=-");
    let (ft, fp) = got[5].split_once(' ').unwrap();
    assert_eq!(
        got[4],
        format!("opik_trace_id={ft} opik_parent_span_id={fp} baggage=-")
    );
    // Outside any span nothing is sent.
    let outside = client(OpikMiddleware::new())
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(outside, "opik_trace_id=- opik_parent_span_id=- baggage=-");
}

#[tokio::test]
async fn baggage_alone_crosses_a_proxy_that_drops_underscore_headers() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    // The "proxy": drops every header whose name has an underscore, as nginx does.
    let app = leaf(&store).layer(axum::middleware::map_request(
        |mut req: axum::extract::Request| async move {
            let names: Vec<_> = req
                .headers()
                .keys()
                .filter(|k| k.as_str().contains('_'))
                .cloned()
                .collect();
            for name in names {
                req.headers_mut().remove(name);
            }
            req
        },
    ));
    let addr = serve(app).await;
    let root = store.root_span("caller");
    let http = client(OpikMiddleware::new().send_baggage(true));
    async {
        http.get(format!("http://{addr}/leaf"))
            .send()
            .await
            .unwrap()
    }
    .in_span(root.clone())
    .await;
    root.end();
    store.flush(FLUSH).await;
    let server = opik
        .spans()
        .into_iter()
        .find(|s| s["name"] == "GET /leaf")
        .unwrap();
    assert_eq!(server["trace_id"], root.trace_id().unwrap().to_string());
    assert_eq!(server["parent_span_id"], root.id().unwrap().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_spawned_with_the_helper_keeps_its_parent() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let addr = serve(leaf(&store)).await;
    let http = client(OpikMiddleware::new());
    let root = store.root_span("background job");
    // Spawned from inside the span (then the span is left): the task carries it along.
    let handle = root.in_scope(|| {
        let http = http.clone();
        tower_opik::spawn(async move {
            http.get(format!("http://{addr}/leaf"))
                .send()
                .await
                .unwrap()
                .status()
        })
    });
    assert_eq!(handle.await.unwrap(), 200);
    root.end();
    store.flush(FLUSH).await;
    let server = opik
        .spans()
        .into_iter()
        .find(|s| s["name"] == "GET /leaf")
        .unwrap();
    assert_eq!(server["parent_span_id"], root.id().unwrap().to_string());
}

#[tokio::test]
async fn the_scope_records_errors_and_panics_and_flushes() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let caller = DistributedHeaders::new(tower_opik::id::new_id(), Some(tower_opik::id::new_id()));
    let mut incoming = http::HeaderMap::new();
    caller.inject(&mut incoming);

    let ok: Result<u8, std::io::Error> = DistributedScope::from_headers(&store, &incoming, "ok")
        .run_result(async { Ok(1) })
        .await;
    assert_eq!(ok.unwrap(), 1);
    let failed: Result<(), std::io::Error> =
        DistributedScope::from_headers(&store, &incoming, "failed")
            .flush_when_done(FLUSH)
            .run_result(async { Err(std::io::Error::other("disk full")) })
            .await;
    assert!(failed.is_err());
    // flush_when_done: already delivered, no flush needed here.
    assert_eq!(opik.spans().len(), 2);

    let panicked = tokio::spawn({
        let store = store.clone();
        let incoming = incoming.clone();
        async move {
            DistributedScope::from_headers(&store, &incoming, "panicked")
                .run(async {
                    tower_opik::current_span().child("inner").end();
                    panic!("model exploded")
                })
                .await
        }
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());
    store.flush(FLUSH).await;

    let spans = opik.spans();
    for name in ["ok", "failed", "panicked"] {
        let s = by_name(&spans, name);
        assert_eq!(s["trace_id"], caller.trace_id().to_string(), "{name}");
        assert_eq!(
            s["parent_span_id"],
            caller.parent_span_id().unwrap().to_string(),
            "{name}"
        );
    }
    assert!(by_name(&spans, "ok").get("error_info").is_none());
    assert_eq!(
        by_name(&spans, "failed")["error_info"]["message"],
        "disk full"
    );
    assert_eq!(
        by_name(&spans, "panicked")["error_info"]["exception_type"],
        "Panic"
    );
    assert_eq!(
        by_name(&spans, "panicked")["error_info"]["message"],
        "model exploded"
    );
    assert_eq!(
        by_name(&spans, "inner")["parent_span_id"],
        by_name(&spans, "panicked")["id"]
    );
    assert!(opik.traces().is_empty(), "joined traces are not written");
}

#[tokio::test]
async fn current_headers_helpers() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let span = store.root_span("s");
    span.in_scope(|| {
        let ids = tower_opik::current_distributed_headers().unwrap();
        assert_eq!(
            (ids.trace_id(), ids.parent_span_id()),
            (span.trace_id().unwrap(), span.id())
        );
        let mut headers = http::HeaderMap::new();
        assert!(tower_opik::inject_current(&mut headers));
        assert_eq!(DistributedHeaders::extract(&headers).headers, Some(ids));
        let pairs = ids.to_pairs();
        assert_eq!(pairs.len(), 2, "always both ids");
    });
}
