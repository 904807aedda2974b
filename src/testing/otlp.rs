//! OTLP/HTTP protobuf ingest (`POST v1/private/otel/v1/traces`), decoded and kept for
//! assertions (feature `otel`).

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// An OTel span LocalOpik received over OTLP, with its attributes as text.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let opik = tower_opik::testing::LocalOpik::start().await?;
/// for span in opik.otel_spans() {
///     println!("{} {:?}", span.name, span.attributes.get("opik.trace_id"));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtelSpan {
    /// The OTel trace id, hex.
    pub trace_id: String,
    /// The OTel span id, hex.
    pub span_id: String,
    /// The OTel parent span id, hex (empty for a root).
    pub parent_span_id: String,
    /// The span's name.
    pub name: String,
    /// Its attributes, values as text.
    pub attributes: BTreeMap<String, String>,
    /// The `projectName` header of the export call.
    pub project_name: Option<String>,
}

/// Decodes an export request body.
pub(crate) fn decode(body: &[u8], project_name: Option<String>) -> Result<Vec<OtelSpan>, String> {
    let request = ExportTraceServiceRequest::decode(body)
        .map_err(|e| format!("invalid OTLP protobuf: {e}"))?;
    let mut spans = Vec::new();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .into_iter()
                    .map(|kv| {
                        let value = match kv.value.and_then(|v| v.value) {
                            Some(AnyValue::StringValue(s)) => s,
                            Some(AnyValue::IntValue(i)) => i.to_string(),
                            Some(AnyValue::BoolValue(b)) => b.to_string(),
                            Some(AnyValue::DoubleValue(d)) => d.to_string(),
                            Some(other) => format!("{other:?}"),
                            None => String::new(),
                        };
                        (kv.key, value)
                    })
                    .collect();
                spans.push(OtelSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    attributes,
                    project_name: project_name.clone(),
                });
            }
        }
    }
    Ok(spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
