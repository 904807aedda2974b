//! One giant span must not sink a batch: oversized payloads are replaced by a marker before
//! the record reaches the backend, as the Python SDK does (`{"opik_truncated": true, ...}`).
//! Runs in the export task, never on the request path.

use serde_json::{Value, json};

use crate::record::{JsonObject, Record};

/// Replaces the largest of `input`, `output` and `metadata` with a truncation marker until
/// the record's JSON is at most `limit` bytes. Returns the new JSON, or `None` when even
/// that is not enough (the record is then counted as too large).
pub(crate) fn fit(record: &mut Record, mut json: Vec<u8>, limit: usize) -> Option<Vec<u8>> {
    for _ in 0..3 {
        if json.len() <= limit {
            return Some(json);
        }
        let mut fields = payloads(record);
        let (name, largest, size) = fields
            .iter_mut()
            .filter_map(|(name, field)| {
                let size = field
                    .as_ref()
                    .map(|v| serde_json::to_vec(v).map_or(0, |b| b.len()))?;
                Some((*name, field, size))
            })
            .max_by_key(|(_, _, size)| *size)?;
        if size < 200 {
            return None; // the payloads are not what makes it large
        }
        **largest = Some(marker(name, size, limit));
        json = record.to_json().ok()?;
    }
    (json.len() <= limit).then_some(json)
}

fn marker(field: &str, size: usize, limit: usize) -> JsonObject {
    let Value::Object(map) = json!({
        "opik_truncated": true,
        "reason": format!("{field} was {size} bytes: over the {limit}-byte record limit"),
        "original_bytes": size,
    }) else {
        unreachable!("a json! object literal is an object")
    };
    map
}

fn payloads(record: &mut Record) -> [(&'static str, &mut Option<JsonObject>); 3] {
    match record {
        Record::Span(s) => [
            ("input", &mut s.input),
            ("output", &mut s.output),
            ("metadata", &mut s.metadata),
        ],
        Record::Trace(t) => [
            ("input", &mut t.input),
            ("output", &mut t.output),
            ("metadata", &mut t.metadata),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SpanRecord;

    #[test]
    fn the_largest_payloads_go_first_and_small_ones_stay() {
        let mut span = SpanRecord::new(
            crate::id::new_id(),
            crate::id::new_id(),
            "big",
            crate::Timestamp::now(),
        );
        span.input = crate::record::into_object(json!("x".repeat(50_000)), "input");
        span.output = crate::record::into_object(json!("y".repeat(30_000)), "output");
        span.metadata = crate::record::into_object(json!({"small": true}), "metadata");
        let mut record = Record::from(span);
        let json = record.to_json().unwrap();
        let fitted = fit(&mut record, json, 40_000).unwrap();
        assert!(fitted.len() <= 40_000);
        let Record::Span(s) = &record else {
            unreachable!()
        };
        assert_eq!(s.input.as_ref().unwrap()["opik_truncated"], true);
        assert_eq!(
            s.output.as_ref().unwrap()["output"].as_str().unwrap().len(),
            30_000
        );
        assert_eq!(s.metadata.as_ref().unwrap()["small"], true);
        // Both, when one is not enough.
        let fitted = fit(&mut record, fitted, 2_000).unwrap();
        assert!(fitted.len() <= 2_000);
        // A record too large without its payloads is given up.
        let mut span = SpanRecord::new(
            crate::id::new_id(),
            crate::id::new_id(),
            "n".repeat(5_000),
            crate::Timestamp::now(),
        );
        span.input = crate::record::into_object(json!("x".repeat(5_000)), "input");
        let mut record = Record::from(span);
        let json = record.to_json().unwrap();
        assert!(fit(&mut record, json, 2_000).is_none());
    }
}
