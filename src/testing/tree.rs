//! One trace as a tree of spans, for assertions and for printing.

use std::collections::HashMap;

use serde_json::Value;

use super::validate::parse_date_time;

/// A trace as LocalOpik holds it: its trace record (when this trace's owner wrote one) and
/// its spans as a tree. `Display` renders it as indented text.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
/// let opik = LocalOpik::start().await?;
/// let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
/// let root = store.root_span("request");
/// root.child("llm").end();
/// root.end();
/// store.flush(std::time::Duration::from_secs(5)).await;
/// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
/// assert_eq!(tree.roots()[0].name(), "request");
/// assert_eq!(tree.roots()[0].children()[0].name(), "llm");
/// println!("{tree}");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TraceTree {
    id: String,
    trace: Option<Value>,
    roots: Vec<SpanNode>,
}

/// A span and its children.
///
/// ```
/// # fn check(node: &tower_opik::testing::SpanNode) {
/// println!("{} ({}) has {} children", node.name(), node.id(), node.children().len());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct SpanNode {
    span: Value,
    children: Vec<SpanNode>,
}

impl TraceTree {
    /// Builds the tree of `trace_id` from its spans; `None` when there is neither a trace
    /// record nor a span.
    pub(crate) fn build(trace_id: &str, trace: Option<Value>, spans: Vec<Value>) -> Option<Self> {
        if trace.is_none() && spans.is_empty() {
            return None;
        }
        let ids: std::collections::HashSet<String> = spans
            .iter()
            .filter_map(|s| s["id"].as_str().map(str::to_owned))
            .collect();
        let mut by_parent: HashMap<Option<String>, Vec<Value>> = HashMap::new();
        for span in spans {
            let parent = span["parent_span_id"]
                .as_str()
                .filter(|p| ids.contains(*p))
                .map(str::to_owned);
            by_parent.entry(parent).or_default().push(span);
        }
        fn grow(
            parent: Option<String>,
            by_parent: &mut HashMap<Option<String>, Vec<Value>>,
        ) -> Vec<SpanNode> {
            let mut spans = by_parent.remove(&parent).unwrap_or_default();
            spans.sort_by_key(|s| s["start_time"].as_str().and_then(parse_date_time));
            spans
                .into_iter()
                .map(|span| {
                    let id = span["id"].as_str().map(str::to_owned);
                    SpanNode {
                        children: grow(id, by_parent),
                        span,
                    }
                })
                .collect()
        }
        let roots = grow(None, &mut by_parent);
        Some(Self {
            id: trace_id.to_owned(),
            trace,
            roots,
        })
    }

    /// The trace id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
    /// # let opik = LocalOpik::start().await?;
    /// # let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
    /// # let root = store.root_span("request");
    /// # root.child_of_type("llm", tower_opik::SpanType::Llm).end();
    /// # root.end();
    /// # store.flush(std::time::Duration::from_secs(5)).await;
    /// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
    /// assert_eq!(tree.id(), root.trace_id().unwrap().to_string());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The trace record, when the service that started the trace wrote one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
    /// # let opik = LocalOpik::start().await?;
    /// # let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
    /// # let root = store.root_span("request");
    /// # root.child_of_type("llm", tower_opik::SpanType::Llm).end();
    /// # root.end();
    /// # store.flush(std::time::Duration::from_secs(5)).await;
    /// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
    /// assert_eq!(tree.trace().unwrap()["name"], "request");
    /// # Ok(()) }
    /// ```
    pub fn trace(&self) -> Option<&Value> {
        self.trace.as_ref()
    }

    /// The spans without a parent in this trace (their parent may be a remote span that
    /// was not written here).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
    /// # let opik = LocalOpik::start().await?;
    /// # let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
    /// # let root = store.root_span("request");
    /// # root.child_of_type("llm", tower_opik::SpanType::Llm).end();
    /// # root.end();
    /// # store.flush(std::time::Duration::from_secs(5)).await;
    /// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
    /// assert_eq!(tree.roots().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn roots(&self) -> &[SpanNode] {
        &self.roots
    }

    /// Every span, depth first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
    /// # let opik = LocalOpik::start().await?;
    /// # let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
    /// # let root = store.root_span("request");
    /// # root.child_of_type("llm", tower_opik::SpanType::Llm).end();
    /// # root.end();
    /// # store.flush(std::time::Duration::from_secs(5)).await;
    /// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
    /// assert_eq!(tree.spans().len(), 2);
    /// # Ok(()) }
    /// ```
    pub fn spans(&self) -> Vec<&SpanNode> {
        fn walk<'a>(nodes: &'a [SpanNode], out: &mut Vec<&'a SpanNode>) {
            for n in nodes {
                out.push(n);
                walk(&n.children, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.roots, &mut out);
        out
    }
}

impl SpanNode {
    /// The span's record.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
    /// # let opik = LocalOpik::start().await?;
    /// # let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
    /// # let root = store.root_span("request");
    /// # root.child_of_type("llm", tower_opik::SpanType::Llm).end();
    /// # root.end();
    /// # store.flush(std::time::Duration::from_secs(5)).await;
    /// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
    /// assert_eq!(tree.roots()[0].span()["type"], "general");
    /// # Ok(()) }
    /// ```
    pub fn span(&self) -> &Value {
        &self.span
    }

    /// Its name.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
    /// # let opik = LocalOpik::start().await?;
    /// # let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
    /// # let root = store.root_span("request");
    /// # root.child_of_type("llm", tower_opik::SpanType::Llm).end();
    /// # root.end();
    /// # store.flush(std::time::Duration::from_secs(5)).await;
    /// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
    /// assert_eq!(tree.roots()[0].name(), "request");
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> &str {
        self.span["name"].as_str().unwrap_or_default()
    }

    /// Its id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
    /// # let opik = LocalOpik::start().await?;
    /// # let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
    /// # let root = store.root_span("request");
    /// # root.child_of_type("llm", tower_opik::SpanType::Llm).end();
    /// # root.end();
    /// # store.flush(std::time::Duration::from_secs(5)).await;
    /// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
    /// assert_eq!(tree.roots()[0].id(), root.id().unwrap().to_string());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> &str {
        self.span["id"].as_str().unwrap_or_default()
    }

    /// Its type (`general` when absent).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
    /// # let opik = LocalOpik::start().await?;
    /// # let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
    /// # let root = store.root_span("request");
    /// # root.child_of_type("llm", tower_opik::SpanType::Llm).end();
    /// # root.end();
    /// # store.flush(std::time::Duration::from_secs(5)).await;
    /// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
    /// assert_eq!(tree.roots()[0].children()[0].span_type(), "llm");
    /// # Ok(()) }
    /// ```
    pub fn span_type(&self) -> &str {
        self.span["type"].as_str().unwrap_or("general")
    }

    /// Its children, by start time.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use tower_opik::{testing::LocalOpik, OpikConfig, SpanStore};
    /// # let opik = LocalOpik::start().await?;
    /// # let store = SpanStore::builder().config(OpikConfig::local(&opik.base_url())).build()?;
    /// # let root = store.root_span("request");
    /// # root.child_of_type("llm", tower_opik::SpanType::Llm).end();
    /// # root.end();
    /// # store.flush(std::time::Duration::from_secs(5)).await;
    /// let tree = opik.trace_tree(root.trace_id().unwrap().to_string()).unwrap();
    /// assert_eq!(tree.roots()[0].children()[0].name(), "llm");
    /// # Ok(()) }
    /// ```
    pub fn children(&self) -> &[SpanNode] {
        &self.children
    }
}

/// `start → end` in milliseconds, when both are there.
fn duration_ms(record: &Value) -> Option<f64> {
    let start = parse_date_time(record["start_time"].as_str()?)?;
    let end = parse_date_time(record["end_time"].as_str()?)?;
    Some((end - start) as f64 / 1000.0)
}

fn fmt_duration(record: &Value) -> String {
    duration_ms(record).map_or_else(|| "open".to_owned(), |ms| format!("{ms:.1} ms"))
}

impl std::fmt::Display for TraceTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.trace {
            Some(t) => writeln!(
                f,
                "trace {:?} {} {}",
                t["name"].as_str().unwrap_or_default(),
                fmt_duration(t),
                self.id
            )?,
            None => writeln!(
                f,
                "trace {} (no trace record: joined from another service)",
                self.id
            )?,
        }
        fn node(f: &mut std::fmt::Formatter<'_>, n: &SpanNode, depth: usize) -> std::fmt::Result {
            let ttft = n.span["ttft"]
                .as_f64()
                .map(|ms| format!(" ttft {ms:.1} ms"))
                .unwrap_or_default();
            writeln!(
                f,
                "{:indent$}└─ {} [{}] {}{ttft} {}",
                "",
                n.name(),
                n.span_type(),
                fmt_duration(&n.span),
                n.id(),
                indent = depth * 3
            )?;
            for c in &n.children {
                node(f, c, depth + 1)?;
            }
            Ok(())
        }
        for root in &self.roots {
            node(f, root, 1)?;
        }
        Ok(())
    }
}
