//! `#[track]`, the attribute of [tower-opik](https://docs.rs/tower-opik) that records a
//! function as an Opik span: the Rust form of the Opik Python SDK's `@track`. Use it
//! through tower-opik (feature `macros`): `use tower_opik::track;`.

mod expand;
mod json;
mod options;

use proc_macro::TokenStream;

/// Records every call of a function as an Opik span: the Rust form of the Opik Python
/// SDK's `@track` (`sdks/python/src/opik/decorator/`), for `fn` and `async fn`, free
/// functions and methods.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use tower_opik::{track, SpanStore};
///
/// #[derive(Debug)]
/// struct QuotaExceeded;
/// impl std::fmt::Display for QuotaExceeded {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("quota exceeded")
///     }
/// }
/// impl std::error::Error for QuotaExceeded {}
///
/// #[track(type = "llm", tags = ["chat"], metadata = {"temperature": 0.2})]
/// async fn complete(prompt: &str, max_tokens: u32) -> Result<String, QuotaExceeded> {
///     if max_tokens == 0 {
///         return Err(QuotaExceeded); // recorded as the span's error_info
///     }
///     Ok(format!("echo: {prompt}")) // recorded as the output {"output": "echo: hi"}
/// }
///
/// #[track] // a trace of its own when called outside any span (SpanStore::global)
/// async fn answer(question: String) -> String {
///     complete(&question, 64).await.unwrap_or_default() // a child span
/// }
///
/// SpanStore::disabled().set_global(); // SpanStore::from_env()? in a real service
/// assert_eq!(answer("hi".into()).await, "echo: hi");
/// # }
/// ```
///
/// A `fn` that returns `impl Future<Output = T>` is treated as an `async fn`: its span
/// opens when it is called, the future runs in it, and `T` is the recorded result. (A
/// future returned under another type, such as `Pin<Box<dyn Future>>` from
/// `#[async_trait]`, is a plain value: prefer `async fn`.)
///
/// # Where the span goes
///
/// - It is a child of the current span (an [`OpikLayer`] request, another `#[track]`
///   function, a span entered with `in_span` / `in_scope`).
/// - With no current span, it is the root of a new trace in `SpanStore::global()` (set
///   with `SpanStore::set_global`), and this service writes the trace record.
/// - With neither, nothing is recorded (the span is counted in
///   `StoreStats::no_current_span`).
///
/// The body runs with the span as the current span (an `async fn` in
/// `OpikFutureExt::in_span`, a `fn` in `Span::in_scope`), so nested `#[track]` functions,
/// `current_span().child(..)` and the client middleware nest under it. The span starts
/// when the body starts (for an `async fn`: at its first poll) and ends when the function
/// returns (an `async fn`: when its future completes). A future dropped before it
/// completes still ends the span, marked `tower_opik.unfinished`.
///
/// # Options
///
/// The Python SDK's names (`TrackOptions` in `opik/decorator/arguments_helpers.py`):
///
/// | option | default | meaning |
/// |---|---|---|
/// | `name = "..."` | the function's name | the span's name (any `Into<Cow<'static, str>>` expression) |
/// | `type = "llm"` | `"general"` | `"general"`, `"llm"`, `"tool"` or `"guardrail"`; anything else is a compile error |
/// | `tags = ["a", "b"]` | none | tags (or any expression iterating over `Into<String>`) |
/// | `metadata = {"k": v}` | none | a JSON-ish literal (values are any `Serialize` expressions, `null` too) or any `Serialize` expression |
/// | `capture_input = false` | `true` | the arguments, by name, as the input object (`self` never) |
/// | `ignore_arguments = ["client"]` | none | arguments left out of the input; an unknown name is a compile error |
/// | `capture_output = false` | `true` | the return value as the output (the `Ok` value of a `Result`; `()` is not sent; a non-object `v` is sent as `{"output": v}`) |
/// | `project_name = "..."` | the store's | the project of a trace this function starts (a nested span stays in its trace's project) |
/// | `generations_aggregator = f` | text | for a stream: `f(&[Item]) -> serde_json::Value` makes the output from all the items |
/// | `stream` | detected | the function returns a boxed stream (`Pin<Box<dyn Stream>>`, `BoxStream`), alone or in a `Result` |
///
/// Each captured argument must implement `serde::Serialize`; one that does not is a
/// compile error at that argument saying to add it to `ignore_arguments`. The same goes
/// for the output (`capture_output = false`). A destructured argument
/// (`Json(request): Json<Request>`) is captured under the names it binds.
///
/// # Errors
///
/// A returned `Err(e)` becomes the span's `error_info`: for an `e: std::error::Error`, its
/// message and the chain of its `source()`s (as `ErrorInfo::from_error`); for
/// `anyhow::Error`, `eyre::Report` and `Box<dyn Error>`, their chain too; for other
/// errors, their `Display` (and `Debug` as the traceback). The exception type is the
/// error's Rust type name.
///
/// # Streams
///
/// A function returning `impl Stream<Item = ...>` (or `Result<impl Stream, E>`, or a boxed
/// stream with the `stream` option) returns the stream tracked as the span
/// (`Span::track_stream`): the time to first token at the first item, the items' text
/// aggregated as the output (items implement `tower_opik::stream::StreamChunk`), the
/// usage from the item that carries it, and the span ends when the stream ends or is
/// dropped, as the Python SDK ends a generator's span when it is exhausted.
///
/// # Limits
///
/// - The generated code names the crate `::tower_opik`: depend on it under that name.
/// - Stream items must implement `tower_opik::stream::StreamChunk`, also with
///   `generations_aggregator` or `capture_output = false` (then only their usage and
///   errors are read).
///
/// # Compile errors
///
/// An unknown option, a bad `type`, a captured argument or output that is not
/// `Serialize`, an unknown name in `ignore_arguments`, `generations_aggregator` on a
/// function that returns no stream, or the attribute on anything but a function with a
/// body.
///
/// [`OpikLayer`]: https://docs.rs/tower-opik/latest/tower_opik/server/struct.OpikLayer.html
#[proc_macro_attribute]
pub fn track(attr: TokenStream, item: TokenStream) -> TokenStream {
    let options = match syn::parse::<options::Options>(attr) {
        Ok(options) => options,
        Err(e) => return e.to_compile_error().into(),
    };
    let function = match syn::parse::<syn::ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            // The item is kept as it was, so that only this error is reported.
            let mut out: TokenStream = syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[track]` applies to a function with a body (`fn` or `async fn`, free or in an `impl` block)",
            )
            .to_compile_error()
            .into();
            out.extend(item);
            return out;
        }
    };
    match expand::expand(options, function) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
