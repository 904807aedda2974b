//! The glue `#[track]` expands to (feature `macros`). Not a public API: only the code the
//! macro generates calls it, by fully qualified paths (`::tower_opik::__private::...`).
//!
//! The rules it follows come from the Opik Python SDK's `@track`
//! (`sdks/python/src/opik/decorator/tracker.py`, `base_track_decorator.py`,
//! `inspect_helpers.py`): the span is a child of the current span, else the root of a new
//! trace; the input is the arguments by name (`self` left out); an output that is not an
//! object is sent as `{"output": v}`, a `None` (`()`) output is not sent; an exception
//! becomes `error_info`; a generator's span ends when it is exhausted.

/// What `#[track]` expands to. Hidden: its items change without notice.
pub mod __private {
    use std::borrow::Cow;

    use futures_core::Stream;
    use serde::Serialize;

    pub use serde_json::Value;

    use crate::record::{ErrorInfo, JsonObject, SpanType};
    use crate::span::Span;
    use crate::store::SpanStore;
    use crate::stream::{Aggregate, StreamChunk, TrackedStream};

    /// Opens the span of a tracked function: a child of the current span (in its trace's
    /// project, whatever `project_name` says, as the Python SDK's
    /// `decorator/span_creation_handler.py` resolves a child's project); with none, the
    /// root of a new trace in [`SpanStore::global`], in `project_name` when given; with
    /// neither, a span that records nothing (counted as opened from no current span).
    pub fn start(
        name: impl Into<Cow<'static, str>>,
        span_type: SpanType,
        project_name: Option<&str>,
    ) -> Span {
        if let Some(parent) = current() {
            // A span from a disabled store (or `Span::none`) is current: stay silent in it,
            // as every child of it is.
            return parent.child_of_type(name, span_type);
        }
        match SpanStore::global() {
            Some(store) => {
                let store = match project_name {
                    Some(project) => store.with_project_name(project),
                    None => store,
                };
                let span = store.root_span(name);
                span.set_type(span_type);
                span
            }
            // The detached span counts the loss (`StoreStats::no_current_span`).
            None => crate::current_span().child_of_type(name, span_type),
        }
    }

    /// The span in the current-span slot, `None` when the slot is empty (which
    /// `current_span()` cannot tell apart from a current `Span::none()`).
    fn current() -> Option<Span> {
        crate::context::try_current_span()
    }

    /// A captured argument must be `Serialize`: this trait carries the compile error that
    /// says so (and what to do about it).
    #[diagnostic::on_unimplemented(
        message = "`#[track]` captures this argument as the span's input, but its type `{Self}` does not implement `serde::Serialize`",
        label = "captured as input, not `Serialize`",
        note = "add the argument's name to `ignore_arguments = [\"...\"]`, or set `capture_input = false` (the Opik Python SDK's `@track` options)"
    )]
    pub trait CaptureInput: Serialize {}
    impl<T: Serialize + ?Sized> CaptureInput for T {}

    /// A captured return value (the `Ok` value of a `Result`) must be `Serialize`.
    #[diagnostic::on_unimplemented(
        message = "`#[track]` records the returned `{Self}` as the span's output, but it does not implement `serde::Serialize`",
        label = "captured as output, not `Serialize`",
        note = "set `capture_output = false` (errors are still recorded), or return a `Serialize` type"
    )]
    pub trait CaptureOutput: Serialize {}
    impl<T: Serialize + ?Sized> CaptureOutput for T {}

    /// The items of a tracked stream are read through [`StreamChunk`].
    #[diagnostic::on_unimplemented(
        message = "`#[track]` on a stream reads its items through `tower_opik::stream::StreamChunk`, which `{Self}` does not implement",
        label = "the stream's item type",
        note = "implement `tower_opik::stream::StreamChunk` for the item type (its text may be `None`)"
    )]
    pub trait TrackedItem: StreamChunk {}
    impl<T: StreamChunk + ?Sized> TrackedItem for T {}

    /// A value as JSON, never a panic: what cannot be serialized becomes a note saying so
    /// (as [`Span::set_input`] does).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Value {
        serde_json::to_value(value)
            .unwrap_or_else(|e| Value::String(format!("<not serializable: {e}>")))
    }

    /// A JSON object from the `metadata = {"key": value}` literal.
    pub fn object<const N: usize>(entries: [(&'static str, Value); N]) -> Value {
        Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        )
    }

    /// A JSON array from a `[a, b]` literal inside `metadata`.
    pub fn array<const N: usize>(items: [Value; N]) -> Value {
        Value::Array(items.into())
    }

    /// Adds the tags of `tags = expr` (anything that iterates over strings).
    pub fn add_tags<I>(span: &Span, tags: I)
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        if !span.is_none() {
            for tag in tags {
                span.add_tag(tag);
            }
        }
    }

    /// The captured arguments, by name: the span's input object.
    #[derive(Debug, Default)]
    pub struct Input(JsonObject);

    impl Input {
        /// An empty input.
        pub fn new() -> Self {
            Self::default()
        }

        /// Captures one argument.
        pub fn arg<T: CaptureInput + ?Sized>(&mut self, name: &'static str, value: &T) {
            self.0.insert(name.to_owned(), json(value));
        }

        /// Sets the input on the span (nothing when no argument was captured).
        pub fn finish(self, span: &Span) {
            if !self.0.is_empty() {
                span.set_input(Value::Object(self.0));
            }
        }
    }

    /// Tracks a returned stream as the span (which then ends with the stream): text
    /// output and usage from the items ([`Span::track_stream`]).
    pub fn stream_text<S>(span: Span, stream: S) -> TrackedStream<S, crate::stream::TextAggregator>
    where
        S: Stream,
        S::Item: TrackedItem,
    {
        span.track_stream(stream)
    }

    /// Tracks a returned stream with `generations_aggregator = f`.
    pub fn stream_with<S, F>(
        span: Span,
        stream: S,
        f: F,
    ) -> TrackedStream<S, crate::stream::CollectWith<S::Item, F>>
    where
        S: Stream,
        S::Item: Clone,
        F: FnOnce(&[S::Item]) -> Value,
    {
        span.track_stream_with(stream, crate::stream::CollectWith::new(f))
    }

    /// Tracks a returned stream with `capture_output = false`: usage and errors from the
    /// items, no output.
    pub fn stream_no_output<S>(span: Span, stream: S) -> TrackedStream<S, NoOutput>
    where
        S: Stream,
        S::Item: TrackedItem,
    {
        span.track_stream(stream).aggregator(NoOutput::default())
    }

    /// The aggregation of `capture_output = false`: the last usage and the last error the
    /// items carry, no output.
    #[derive(Debug, Default)]
    pub struct NoOutput {
        usage: Option<crate::Usage>,
        error: Option<ErrorInfo>,
    }

    impl<T: StreamChunk> Aggregate<T> for NoOutput {
        fn observe(&mut self, item: &T, _span: &Span) {
            if let Some(usage) = item.chunk_usage() {
                self.usage = Some(usage);
            }
            if let Some(error) = item.chunk_error() {
                self.error = Some(error);
            }
        }

        fn finish(self, span: &Span) {
            if let Some(usage) = self.usage {
                span.set_usage(usage);
            }
            if let Some(error) = self.error {
                span.set_error(error);
            }
        }
    }

    /// The outcome of a tracked function, recorded by autoref specialisation: the macro
    /// calls `(&&&&&&&&ErrorOf(&out)).__opik_error(&span)` and
    /// `(&&Captured(&out)).__opik_output(&span)` with every trait below in scope; method
    /// resolution picks the first level (most references) whose bounds hold.
    pub mod outcome {
        use std::error::Error;
        use std::fmt::{Debug, Display};

        use super::{CaptureOutput, ErrorInfo, Span, json};

        /// The function's result, for the error levels.
        #[derive(Debug)]
        pub struct ErrorOf<'a, T: ?Sized>(pub &'a T);

        /// The function's result, for the output levels.
        #[derive(Debug)]
        pub struct Captured<'a, T: ?Sized>(pub &'a T);

        fn type_name<E: ?Sized>() -> &'static str {
            std::any::type_name::<E>()
        }

        /// An error behind `dyn Error` (anyhow, eyre, boxed errors): its chain, and the
        /// type name of the wrapper.
        fn from_dyn<E: ?Sized>(error: &(dyn Error + 'static)) -> ErrorInfo {
            let info = ErrorInfo::from_error(error);
            ErrorInfo::with_traceback(
                type_name::<E>(),
                info.message().unwrap_or_default(),
                info.traceback(),
            )
        }

        /// Level 1: `E: std::error::Error`: the message and the chain of `source()`s.
        pub trait StdError {
            /// Records the `Err`, if any.
            fn __opik_error(&self, span: &Span);
        }
        impl<T, E: Error> StdError for &&&&&&&ErrorOf<'_, Result<T, E>> {
            fn __opik_error(&self, span: &Span) {
                if let Err(e) = self.0 {
                    span.set_error(ErrorInfo::from_error(e));
                }
            }
        }

        /// Level 2: `anyhow::Error`, `eyre::Report`, `Box<dyn Error + Send + Sync>`.
        pub trait DynSendError {
            /// Records the `Err`, if any.
            fn __opik_error(&self, span: &Span);
        }
        impl<T, E> DynSendError for &&&&&&ErrorOf<'_, Result<T, E>>
        where
            E: AsRef<dyn Error + Send + Sync + 'static>,
        {
            fn __opik_error(&self, span: &Span) {
                if let Err(e) = self.0 {
                    span.set_error(from_dyn::<E>(e.as_ref()));
                }
            }
        }

        /// Level 3: `Box<dyn Error>`.
        pub trait DynError {
            /// Records the `Err`, if any.
            fn __opik_error(&self, span: &Span);
        }
        impl<T, E> DynError for &&&&&ErrorOf<'_, Result<T, E>>
        where
            E: AsRef<dyn Error + 'static>,
        {
            fn __opik_error(&self, span: &Span) {
                if let Err(e) = self.0 {
                    span.set_error(from_dyn::<E>(e.as_ref()));
                }
            }
        }

        /// Level 4: `Display + Debug` errors: the message, and `Debug` as the traceback.
        pub trait DisplayDebugError {
            /// Records the `Err`, if any.
            fn __opik_error(&self, span: &Span);
        }
        impl<T, E: Display + Debug> DisplayDebugError for &&&&ErrorOf<'_, Result<T, E>> {
            fn __opik_error(&self, span: &Span) {
                if let Err(e) = self.0 {
                    span.set_error(ErrorInfo::with_traceback(
                        type_name::<E>(),
                        e.to_string(),
                        format!("{e:?}"),
                    ));
                }
            }
        }

        /// Level 5: `Display`-only errors.
        pub trait DisplayError {
            /// Records the `Err`, if any.
            fn __opik_error(&self, span: &Span);
        }
        impl<T, E: Display> DisplayError for &&&ErrorOf<'_, Result<T, E>> {
            fn __opik_error(&self, span: &Span) {
                if let Err(e) = self.0 {
                    span.set_error(ErrorInfo::new(type_name::<E>(), e.to_string()));
                }
            }
        }

        /// Level 6: `Debug`-only errors.
        pub trait DebugError {
            /// Records the `Err`, if any.
            fn __opik_error(&self, span: &Span);
        }
        impl<T, E: Debug> DebugError for &&ErrorOf<'_, Result<T, E>> {
            fn __opik_error(&self, span: &Span) {
                if let Err(e) = self.0 {
                    span.set_error(ErrorInfo::new(type_name::<E>(), format!("{e:?}")));
                }
            }
        }

        /// Level 7: any other `Err`: its type only.
        pub trait OpaqueError {
            /// Records the `Err`, if any.
            fn __opik_error(&self, span: &Span);
        }
        impl<T, E> OpaqueError for &ErrorOf<'_, Result<T, E>> {
            fn __opik_error(&self, span: &Span) {
                if self.0.is_err() {
                    span.set_error(ErrorInfo::new(type_name::<E>(), ""));
                }
            }
        }

        /// Level 8: not a `Result`: no error.
        pub trait NoError {
            /// Does nothing.
            fn __opik_error(&self, span: &Span);
        }
        impl<T: ?Sized> NoError for ErrorOf<'_, T> {
            fn __opik_error(&self, _span: &Span) {}
        }

        /// Sets a captured value as the output (`()` and other `null`s are not sent).
        fn set_output<T: CaptureOutput + ?Sized>(span: &Span, value: &T) {
            let value = json(value);
            if !value.is_null() {
                span.set_output(value);
            }
        }

        /// Output level 1: a `Result`: its `Ok` value.
        pub trait OkOutput<T: ?Sized> {
            /// Records the output.
            fn __opik_output(&self, span: &Span)
            where
                T: CaptureOutput;
        }
        impl<T, E> OkOutput<T> for &Captured<'_, Result<T, E>> {
            fn __opik_output(&self, span: &Span)
            where
                T: CaptureOutput,
            {
                if let Ok(value) = self.0 {
                    set_output(span, value);
                }
            }
        }

        /// Output level 2: any other value.
        pub trait ValueOutput<T: ?Sized> {
            /// Records the output.
            fn __opik_output(&self, span: &Span)
            where
                T: CaptureOutput;
        }
        impl<T: ?Sized> ValueOutput<T> for Captured<'_, T> {
            fn __opik_output(&self, span: &Span)
            where
                T: CaptureOutput,
            {
                set_output(span, self.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::__private::start;
    use crate::{SpanStore, SpanType};

    #[tokio::test]
    async fn with_no_current_span_and_no_global_store_nothing_is_recorded() {
        // No unit test of this crate installs a global store (the integration tests do,
        // in their own processes).
        assert!(SpanStore::global().is_none());
        // The loss is counted only while an enabled store is alive.
        let store = SpanStore::builder()
            .config(crate::OpikConfig::local("http://127.0.0.1:9/api/"))
            .build()
            .unwrap();
        let before = store.stats().no_current_span;
        let span = start("orphan", SpanType::Llm, Some("project"));
        assert!(span.is_none());
        assert!(store.stats().no_current_span > before, "counted as a loss");
    }
}
