//! `#[track]` on the signatures Rust code has: borrowed returns, `&mut self` in a trait's
//! `async fn`, destructured arguments, where clauses, boxed errors, a `fn` returning
//! `impl Future`; checked by what reaches LocalOpik over 127.0.0.1.

#![cfg(all(feature = "testing", feature = "macros"))]
// The generated code must not trip the user's lints: a one-line body `{ x }` once did.
#![deny(unused_braces)]

mod common;

use serde::Serialize;
use serde_json::{Value, json};
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikFutureExt, track};

use common::{FLUSH, flushed, span_named, store_for};

/// An error with a source, to box.
#[derive(Debug)]
struct Wrapped(std::io::Error);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wrapped")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

struct Counter {
    hits: u32,
    label: String,
}

trait Lookup {
    async fn lookup(&mut self, key: &str) -> Option<u32>;
}

impl Lookup for Counter {
    #[track]
    async fn lookup(&mut self, key: &str) -> Option<u32> {
        self.hits += 1;
        (key == "hit").then_some(self.hits)
    }
}

impl Counter {
    /// A borrowed return value.
    #[track]
    fn label(&self) -> &str {
        &self.label
    }
}

/// Destructured arguments are captured under the names they bind; `_` is not.
#[track]
fn area((width, height): (u32, u32), _: u8) -> u32 {
    width * height
}

#[track]
fn first<'a, T>(items: &'a [T]) -> Option<&'a T>
where
    T: Serialize,
{
    items.first()
}

#[track]
fn boxed_error(fail: bool) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    if fail {
        Err(Wrapped(std::io::Error::other("inner")))?;
    }
    Ok(1)
}

#[tokio::test]
async fn references_traits_patterns_and_boxed_errors() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    let mut counter = Counter {
        hits: 0,
        label: "c".into(),
    };
    let hit = tower_opik::spawn(
        async move {
            let hit = counter.lookup("hit").await; // Send: spawned
            (hit, counter)
        }
        .in_span(root.clone()),
    );
    let (hit, counter) = hit.await.unwrap();
    assert_eq!(hit, Some(1));
    root.in_scope(|| {
        assert_eq!(counter.label(), "c");
        assert_eq!(area((3, 4), 0), 12);
        assert_eq!(first(&["x", "y"]), Some(&"x"));
        assert!(boxed_error(true).is_err());
    });
    root.end();
    flushed(&store).await;

    assert_eq!(span_named(&opik, "lookup")["input"], json!({"key": "hit"}));
    assert_eq!(span_named(&opik, "lookup")["output"], json!({"output": 1}));
    assert_eq!(span_named(&opik, "label")["output"], json!({"output": "c"}));
    let area = span_named(&opik, "area");
    assert_eq!(area["input"], json!({"width": 3, "height": 4}));
    assert_eq!(
        span_named(&opik, "first")["input"],
        json!({"items": ["x", "y"]})
    );
    let error = &span_named(&opik, "boxed_error")["error_info"];
    assert!(
        error["exception_type"]
            .as_str()
            .unwrap()
            .starts_with("alloc::boxed::Box<dyn")
    );
    assert_eq!(
        error["traceback"], "wrapped\ncaused by: inner",
        "the chain through the box"
    );
}

/// Returns a future: the span opens at the call and ends when the future completes.
#[track(type = "tool")]
fn fetch(id: u32) -> impl std::future::Future<Output = Result<String, std::io::Error>> + Send {
    async move {
        tokio::task::yield_now().await;
        if id == 0 {
            return Err(std::io::Error::other("no id 0"));
        }
        Ok(format!("doc {id}"))
    }
}

#[tokio::test]
async fn a_fn_returning_a_future_ends_its_span_when_the_future_completes() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("request");
    let pending = root.in_scope(|| fetch(7));
    flushed(&store).await;
    assert!(opik.spans().is_empty(), "open until the future completes");
    assert_eq!(tokio::spawn(pending).await.unwrap().unwrap(), "doc 7");
    assert!(root.in_scope(|| fetch(0)).await.is_err());
    root.end();
    flushed(&store).await;

    let fetches: Vec<Value> = opik
        .spans()
        .into_iter()
        .filter(|s| s["name"] == "fetch")
        .collect();
    assert_eq!(fetches.len(), 2);
    let ok = fetches.iter().find(|s| s["input"]["id"] == 7).unwrap();
    assert_eq!(ok["output"], json!({"output": "doc 7"}));
    assert_eq!(ok["parent_span_id"], root.id().unwrap().to_string());
    let failed = fetches.iter().find(|s| s["input"]["id"] == 0).unwrap();
    assert_eq!(failed["error_info"]["message"], "no id 0");
}

#[track]
fn one_line(x: u8) -> u8 {
    x
}

#[track]
async fn one_line_async(x: u8) -> u8 {
    x
}

#[tokio::test]
async fn one_line_bodies_compile_under_deny_unused_braces() {
    let opik = LocalOpik::start().await.unwrap();
    let store = store_for(&opik).build().unwrap();
    let root = store.root_span("root");
    let n = async { one_line(1) + one_line_async(2).await }
        .in_span(root.clone())
        .await;
    assert_eq!(n, 3);
    root.end();
    store.flush(FLUSH).await;
    assert_eq!(
        span_named(&opik, "one_line")["output"],
        json!({"output": 1})
    );
}
