//! LocalOpik speaks Opik's ingest API over real HTTP and refuses what Opik refuses.
#![cfg(feature = "testing")]

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};
use tower_opik::testing::LocalOpik;

mod common;

use common::http_client as client;

fn v7() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An RFC 3339 timestamp `secs` seconds after now.
fn ts(secs: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    tower_opik::Timestamp::from_unix_micros(now + secs * 1_000_000).to_string()
}

fn span(trace: &str) -> Value {
    json!({"id": v7(), "trace_id": trace, "name": "s", "type": "llm", "start_time": ts(0),
           "end_time": ts(1), "project_name": "p", "input": {"q": 1}, "usage": {"total_tokens": 3}})
}

async fn post(opik: &LocalOpik, path: &str, body: &Value, gzip: bool) -> reqwest::Response {
    let client = client();
    let bytes = serde_json::to_vec(body).unwrap();
    let mut req = client
        .post(format!("{}{path}", opik.base_url()))
        .header("content-type", "application/json");
    req = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&bytes).unwrap();
        req.header("content-encoding", "gzip")
            .body(enc.finish().unwrap())
    } else {
        req.body(bytes)
    };
    req.send().await.unwrap()
}

async fn status(opik: &LocalOpik, path: &str, body: &Value) -> u16 {
    post(opik, path, body, false).await.status().as_u16()
}

#[tokio::test]
async fn valid_batches_are_stored_plain_and_gzipped() {
    let opik = LocalOpik::start().await.unwrap();
    let trace = v7();
    let spans = json!({"spans": [span(&trace), span(&trace)]});
    assert_eq!(
        post(&opik, "v1/private/spans/batch", &spans, false)
            .await
            .status(),
        204
    );
    let more = json!({"spans": [span(&trace)]});
    assert_eq!(
        post(&opik, "v1/private/spans/batch", &more, true)
            .await
            .status(),
        204
    );
    let traces =
        json!({"traces": [{"id": trace, "name": "t", "start_time": ts(0), "thread_id": "c1"}]});
    assert_eq!(
        post(&opik, "v1/private/traces/batch", &traces, true)
            .await
            .status(),
        204
    );
    assert_eq!(opik.spans().len(), 3);
    assert_eq!(opik.trace(&trace).unwrap()["thread_id"], "c1");
    assert_eq!(opik.spans_of_trace(&trace).len(), 3);
    let log = opik.requests();
    assert_eq!(
        log.iter().map(|r| r.gzip).collect::<Vec<_>>(),
        [false, true, true]
    );
    assert!(log.iter().all(|r| r.status == 204));
    // The backend's own port serves the same paths without /api.
    let root = format!("http://{}/v1/private/spans/batch", opik.addr());
    let resp = client()
        .post(root)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"spans": [span(&trace)]})).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test]
async fn every_refusal_of_the_backend() {
    let opik = LocalOpik::start().await.unwrap();
    let trace = v7();
    let old_v7 = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        1_000_000_000,
        0,
    ))
    .to_string();
    type Edit = Box<dyn Fn(&mut Value)>;
    let set = |field: &'static str, value: Value| -> Edit {
        Box::new(move |s: &mut Value| s[field] = value.clone())
    };
    let cases: Vec<(&str, Edit, u16)> = vec![
        (
            "v4 id",
            set("id", json!(uuid::Uuid::new_v4().to_string())),
            400,
        ),
        ("garbage id", set("id", json!("nope")), 400),
        ("numeric id", set("id", json!(42)), 400),
        ("id from 2001", set("id", json!(old_v7)), 400),
        (
            "v4 trace id",
            set("trace_id", json!(uuid::Uuid::new_v4().to_string())),
            400,
        ),
        (
            "v4 parent",
            set("parent_span_id", json!(uuid::Uuid::new_v4().to_string())),
            400,
        ),
        (
            "no zone",
            set("start_time", json!("2026-11-22T22:57:56.168246")),
            400,
        ),
        (
            "space separator",
            set("end_time", json!("2026-11-22 22:57:56Z")),
            400,
        ),
        ("unix time", set("start_time", json!(1_700_000_000)), 400),
        ("unknown type", set("type", json!("agent")), 400),
        ("unknown source", set("source", json!("cli")), 400),
        ("unknown field", set("parent_id", json!("x")), 400),
        ("input a number", set("input", json!(42)), 400),
        (
            "input an array of numbers",
            set("input", json!([1, 2])),
            400,
        ),
        (
            "usage over int32",
            set("usage", json!({"t": 3_000_000_000u64})),
            400,
        ),
        ("usage a float", set("usage", json!({"t": 1.5})), 400),
        ("tags not strings", set("tags", json!([1])), 400),
        (
            "error_info unknown key",
            set(
                "error_info",
                json!({"exception_type": "E", "traceback": "t", "x": 1}),
            ),
            400,
        ),
        ("blank project", set("project_name", json!("  ")), 422),
        ("duplicate tags", set("tags", json!(["a", "a"])), 422),
        (
            "negative cost",
            set("total_estimated_cost", json!(-0.1)),
            422,
        ),
        (
            "empty traceback",
            set(
                "error_info",
                json!({"exception_type": "E", "traceback": ""}),
            ),
            422,
        ),
        (
            "long environment",
            set("environment", json!("e".repeat(151))),
            422,
        ),
        (
            "no start time",
            Box::new(|s: &mut Value| {
                s.as_object_mut().unwrap().remove("start_time");
            }),
            400,
        ),
        (
            "no id",
            Box::new(|s: &mut Value| {
                s.as_object_mut().unwrap().remove("id");
            }),
            400,
        ),
    ];
    for (name, edit, expected) in cases {
        let good = span(&trace);
        let mut bad = span(&trace);
        edit(&mut bad);
        let body = json!({"spans": [good, bad]});
        assert_eq!(
            status(&opik, "v1/private/spans/batch", &body).await,
            expected,
            "{name}"
        );
    }
    assert!(opik.spans().is_empty(), "a refused batch stores nothing");
    // Accepted variants.
    for (name, edit) in [
        (
            "offset zone",
            set("start_time", json!("2026-11-22T23:57:56+01:00")),
        ),
        ("string input", set("input", json!("text"))),
        ("array of objects", set("output", json!([{"a": 1}]))),
        ("null optional", set("model", Value::Null)),
    ] {
        let mut s = span(&trace);
        edit(&mut s);
        assert_eq!(
            status(&opik, "v1/private/spans/batch", &json!({"spans": [s]})).await,
            204,
            "{name}"
        );
    }
    assert_eq!(opik.requests().last().unwrap().null_fields, 1);
    // Batch shapes.
    let many: Vec<Value> = (0..1001).map(|_| span(&trace)).collect();
    for (name, body, expected) in [
        ("empty batch", json!({"spans": []}), 422),
        ("1001 items", json!({"spans": many}), 422),
        ("null list", json!({"spans": null}), 422),
        ("not a list", json!({"spans": {}}), 400),
        ("wrong key", json!({"traces": [span(&trace)]}), 400),
        ("not an object", json!([1]), 400),
    ] {
        assert_eq!(
            status(&opik, "v1/private/spans/batch", &body).await,
            expected,
            "{name}"
        );
    }
    let trace_with_type = json!({"traces": [{"id": v7(), "start_time": ts(0), "type": "llm"}]});
    assert_eq!(
        status(&opik, "v1/private/traces/batch", &trace_with_type).await,
        400
    );
    // Not JSON, bad gzip, bad encodings and content types.
    let client = client();
    let url = format!("{}v1/private/spans/batch", opik.base_url());
    let send = |body: &'static [u8], ct: &'static str, ce: Option<&'static str>| {
        let mut r = client.post(&url).header("content-type", ct).body(body);
        if let Some(ce) = ce {
            r = r.header("content-encoding", ce);
        }
        r.send()
    };
    assert_eq!(
        send(b"{not json", "application/json", None)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        send(b"\x1f\x8bgarbage", "application/json", Some("gzip"))
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        send(b"{}", "application/json", Some("br"))
            .await
            .unwrap()
            .status(),
        415
    );
    assert_eq!(send(b"{}", "text/plain", None).await.unwrap().status(), 415);
    assert_eq!(
        client
            .get(opik.base_url() + "v1/private/is-alive")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let ping = client
        .get(opik.base_url() + "is-alive/ping")
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), 200, "the SDKs' health check");
    // Every refusal says why, in JSON.
    let resp = post(
        &opik,
        "v1/private/spans/batch",
        &json!({"spans": []}),
        false,
    )
    .await;
    let body: Value = resp.json_or_text().await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("between 1 and 1000"),
        "{body}"
    );
}

trait JsonOrText {
    async fn json_or_text(self) -> Value;
}

impl JsonOrText for reqwest::Response {
    async fn json_or_text(self) -> Value {
        let bytes = self.bytes().await.unwrap();
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    }
}

#[tokio::test]
async fn upsert_by_id_keeps_the_newest_last_updated_at() {
    let opik = LocalOpik::start().await.unwrap();
    let trace = v7();
    let id = v7();
    let write = |name: &str, updated: Option<String>| {
        let mut s = span(&trace);
        s["id"] = json!(id);
        s["name"] = json!(name);
        if let Some(u) = updated {
            s["last_updated_at"] = json!(u);
        }
        json!({"spans": [s]})
    };
    // As the Python SDK does: a start record, then the full one.
    assert_eq!(
        status(&opik, "v1/private/spans/batch", &write("start", None)).await,
        204
    );
    assert_eq!(
        status(&opik, "v1/private/spans/batch", &write("end", Some(ts(2)))).await,
        204
    );
    assert_eq!(opik.span(&id).unwrap()["name"], "end");
    // An older write does not overwrite a newer one; an equal or newer one does.
    assert_eq!(
        status(
            &opik,
            "v1/private/spans/batch",
            &write("stale", Some(ts(-60)))
        )
        .await,
        204
    );
    assert_eq!(opik.span(&id).unwrap()["name"], "end");
    assert_eq!(
        status(
            &opik,
            "v1/private/spans/batch",
            &write("newer", Some(ts(60)))
        )
        .await,
        204
    );
    assert_eq!(opik.span(&id).unwrap()["name"], "newer");
    assert_eq!(opik.write_count(&id), 4);
    assert_eq!(opik.spans().len(), 1);
}

#[tokio::test]
async fn workspace_and_api_key_are_checked() {
    let open = LocalOpik::start().await.unwrap();
    let body = json!({"spans": [span(&v7())]});
    let client = client();
    let send = |opik: &LocalOpik, key: Option<&str>, ws: Option<&str>| {
        let mut r = client
            .post(format!("{}v1/private/spans/batch", opik.base_url()))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap());
        if let Some(k) = key {
            r = r.header("authorization", k);
        }
        if let Some(w) = ws {
            r = r.header("comet-workspace", w);
        }
        r.send()
    };
    assert_eq!(send(&open, None, None).await.unwrap().status(), 204);
    assert_eq!(
        send(&open, Some("any"), Some("default"))
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(send(&open, None, Some("team")).await.unwrap().status(), 404);
    let cloud = LocalOpik::builder()
        .api_key("k1")
        .workspace("team")
        .start()
        .await
        .unwrap();
    assert_eq!(
        send(&cloud, Some("k1"), Some("team"))
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        send(&cloud, Some("Bearer k1"), Some("team"))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        send(&cloud, None, Some("team")).await.unwrap().status(),
        401
    );
    assert_eq!(
        send(&cloud, Some("k1"), Some("default"))
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn faults_are_served_in_order() {
    let opik = LocalOpik::start().await.unwrap();
    let body = json!({"spans": [span(&v7())]});
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", HeaderValue::from_static("7"));
    opik.faults()
        .fail_next(1, StatusCode::TOO_MANY_REQUESTS, headers);
    opik.faults().drop_next(1);
    opik.faults().delay_next(1, Duration::from_millis(300));
    let resp = post(&opik, "v1/private/spans/batch", &body, false).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let client = client();
    let dropped = client
        .post(format!("{}v1/private/spans/batch", opik.base_url()))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .send()
        .await;
    assert!(
        dropped.is_err(),
        "a dropped connection is a transport error: {dropped:?}"
    );
    let started = std::time::Instant::now();
    assert_eq!(
        post(&opik, "v1/private/spans/batch", &body, false)
            .await
            .status(),
        204
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(opik.faults().served(), 3);
    assert_eq!(opik.faults().queued(), 0);
    assert_eq!(
        opik.spans().len(),
        1,
        "only the delayed call stored its batch"
    );
}

#[tokio::test]
async fn waiting_for_data_returns_when_it_arrives_or_at_the_timeout() {
    let opik = LocalOpik::start().await.unwrap();
    assert!(!opik.wait_for_spans(1, Duration::from_millis(50)).await);
    let waiter = opik.wait_for_spans(2, Duration::from_secs(10));
    let body = json!({"spans": [span(&v7()), span(&v7())]});
    let (arrived, _) = tokio::join!(waiter, post(&opik, "v1/private/spans/batch", &body, false));
    assert!(arrived);
}

#[tokio::test]
async fn a_trace_renders_as_a_tree() {
    let opik = LocalOpik::start().await.unwrap();
    let trace = v7();
    let mut root = span(&trace);
    root["name"] = json!("root");
    let mut child = span(&trace);
    child["name"] = json!("child");
    child["parent_span_id"] = root["id"].clone();
    let mut grandchild = span(&trace);
    grandchild["name"] = json!("grandchild");
    grandchild["parent_span_id"] = child["id"].clone();
    let body = json!({"spans": [grandchild, child, root]});
    assert_eq!(status(&opik, "v1/private/spans/batch", &body).await, 204);
    let tree = opik.trace_tree(&trace).unwrap();
    assert_eq!(tree.roots().len(), 1);
    assert_eq!(tree.roots()[0].name(), "root");
    assert_eq!(
        tree.roots()[0].children()[0].children()[0].name(),
        "grandchild"
    );
    assert_eq!(tree.spans().len(), 3);
    let text = tree.to_string();
    let indent = |name: &str| {
        let line = text
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap();
        line.len() - line.trim_start().len()
    };
    assert!(
        indent("root") < indent("child") && indent("child") < indent("grandchild"),
        "{text}"
    );
    assert!(
        text.contains("[llm]") && text.contains("1000.0 ms"),
        "{text}"
    );
    assert!(opik.trace_tree(v7()).is_none());
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let opik = LocalOpik::start().await.unwrap();
    let url = opik.base_url();
    opik.shutdown().await;
    let refused = client()
        .post(format!("{url}v1/private/spans/batch"))
        .send()
        .await;
    assert!(refused.is_err());
}
