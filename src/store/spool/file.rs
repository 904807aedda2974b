//! One spooled batch on disk: its file name and how it is read back.
//!
//! A spool file is the batch's request body exactly as it would be sent
//! (`{"spans":[...]}`), readable with `jq`. Its name carries the rest:
//!
//! ```text
//! 019374c2a1f07c3e8d2b5a9f0e1d2c3b-spans-1000-8f3a2c1d.json
//! └ uuid v7 (time order)          └ kind └ records └ CRC-32 of the content
//! ```
//!
//! The uuid v7 sorts files oldest first, the record count lets a file that cannot be read
//! back be counted, and the CRC-32 (`crc32fast`) catches a torn or damaged file (a write
//! that never completed is never under this name: it is written as `*.tmp`, synced, then
//! renamed).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::store::{ExportBatch, RecordKind};

/// The largest file read back: far over any batch the store writes (`max_batch_bytes` is
/// 8 MiB by default); a larger one is not ours, or damaged, and is set aside unread.
pub(super) const MAX_FILE_BYTES: u64 = 256 << 20;

/// The suffix of a complete spool file.
pub(super) const SUFFIX: &str = ".json";
/// The suffix of a file being written (left behind by a crash mid-write).
pub(super) const TMP_SUFFIX: &str = ".tmp";
/// The suffix a file that cannot be read back is renamed to.
pub(super) const CORRUPT_SUFFIX: &str = ".corrupt";

/// What a spool file's name says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FileName {
    pub(super) id: Uuid,
    pub(super) kind: RecordKind,
    pub(super) records: u64,
    pub(super) crc: u32,
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Span => "spans",
        RecordKind::Trace => "traces",
        RecordKind::SpanScore => "span_scores",
        RecordKind::TraceScore => "trace_scores",
    }
}

impl FileName {
    /// The name for `batch`'s body, new (its uuid is taken now).
    pub(super) fn for_batch(batch: &ExportBatch) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: batch.kind(),
            records: batch.len() as u64,
            crc: crc32fast::hash(batch.json_body()),
        }
    }

    /// `None` for a name that is not a complete spool file's (files of others are left
    /// alone).
    pub(super) fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(SUFFIX)?;
        let mut parts = stem.split('-');
        let id = parts.next()?;
        let kind = parts.next()?;
        let records = parts.next()?;
        let crc = parts.next()?;
        if parts.next().is_some() || id.len() != 32 || crc.len() != 8 {
            return None;
        }
        let kind = RecordKind::ALL
            .into_iter()
            .find(|k| kind_name(*k) == kind)?;
        Some(Self {
            id: Uuid::try_parse(id).ok()?,
            kind,
            records: records.parse().ok()?,
            crc: u32::from_str_radix(crc, 16).ok()?,
        })
    }

    /// The file name (`{uuid}-{kind}-{records}-{crc}.json`).
    pub(super) fn name(&self) -> String {
        format!(
            "{}-{}-{}-{:08x}{SUFFIX}",
            self.id.simple(),
            kind_name(self.kind),
            self.records,
            self.crc
        )
    }
}

/// Why a spool file cannot be read back.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unreadable {
    /// Its content does not match its checksum (torn, truncated, damaged).
    Checksum {
        expected: u32,
        found: u32,
        bytes: usize,
    },
    /// It matches its checksum but is not the body its name says.
    Body(String),
    /// Larger than [`MAX_FILE_BYTES`]: not read.
    TooLarge { bytes: u64 },
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Checksum {
                expected,
                found,
                bytes,
            } => write!(
                f,
                "its {bytes} bytes do not match the checksum in its name (CRC-32 {found:08x}, \
                 expected {expected:08x}): torn or damaged"
            ),
            Self::Body(why) => write!(f, "not a batch body: {why}"),
            Self::TooLarge { bytes } => write!(
                f,
                "{bytes} bytes, over the {MAX_FILE_BYTES} a spool file can hold: not read"
            ),
        }
    }
}

#[derive(Deserialize)]
struct Item {
    id: Uuid,
}

/// The batch a spool file holds, checked against its name.
pub(super) fn decode(name: &FileName, content: &[u8]) -> Result<ExportBatch, Unreadable> {
    let found = crc32fast::hash(content);
    if found != name.crc {
        return Err(Unreadable::Checksum {
            expected: name.crc,
            found,
            bytes: content.len(),
        });
    }
    let body: HashMap<&str, Vec<&RawValue>> =
        serde_json::from_slice(content).map_err(|e| Unreadable::Body(e.to_string()))?;
    let key = name.kind.batch_key();
    let items = match (body.len(), body.get(key)) {
        (1, Some(items)) => items,
        _ => return Err(Unreadable::Body(format!("expected one list, `{key}`"))),
    };
    if items.len() as u64 != name.records {
        return Err(Unreadable::Body(format!(
            "{} records where its name says {}",
            items.len(),
            name.records
        )));
    }
    let mut batch = ExportBatch::new(name.kind);
    for raw in items {
        let item: Item = serde_json::from_str(raw.get())
            .map_err(|e| Unreadable::Body(format!("a record without an id: {e}")))?;
        batch.push_json(item.id, raw.get().as_bytes());
    }
    batch.seal();
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TraceRecord;

    fn batch(n: usize) -> ExportBatch {
        let records = (0..n)
            .map(|i| {
                TraceRecord::new(
                    crate::id::new_id(),
                    format!("t{i}"),
                    crate::Timestamp::now(),
                )
                .into()
            })
            .collect();
        ExportBatch::from_records(RecordKind::Trace, records)
    }

    #[test]
    fn a_name_says_what_the_file_holds_and_reads_back() {
        let b = batch(3);
        let name = FileName::for_batch(&b);
        let text = name.name();
        assert!(
            text.ends_with(".json") && text.contains("-traces-3-"),
            "{text}"
        );
        assert_eq!(FileName::parse(&text), Some(name.clone()));
        let back = decode(&name, b.json_body()).unwrap();
        assert_eq!(back.json_body(), b.json_body());
        assert_eq!(back.ids().collect::<Vec<_>>(), b.ids().collect::<Vec<_>>());
        assert_eq!(back.kind(), RecordKind::Trace);
    }

    #[test]
    fn every_kind_round_trips_through_a_name() {
        for kind in RecordKind::ALL {
            let name = FileName {
                id: Uuid::now_v7(),
                kind,
                records: 7,
                crc: 0xdead_beef,
            };
            assert_eq!(FileName::parse(&name.name()), Some(name));
        }
    }

    #[test]
    fn names_of_other_files_are_not_spool_files() {
        let good = FileName::for_batch(&batch(1)).name();
        for name in [
            "notes.txt".to_owned(),
            ".lock".to_owned(),
            good.replace(".json", ".tmp"),
            good.replace(".json", ".json.corrupt"),
            good.replace("-traces-", "-logs-"),
            good.replace("-traces-1-", "-traces-x-"),
            format!("x{good}"),
            good.replace(".json", "-extra.json"),
        ] {
            assert_eq!(FileName::parse(&name), None, "{name}");
        }
    }

    #[test]
    fn a_truncated_or_damaged_file_is_unreadable_with_a_reason() {
        let b = batch(4);
        let name = FileName::for_batch(&b);
        let body = b.json_body();
        let torn = decode(&name, &body[..body.len() / 2]).unwrap_err();
        assert!(torn.to_string().contains("torn or damaged"), "{torn}");
        let mut flipped = body.to_vec();
        flipped[10] ^= 1;
        assert!(matches!(
            decode(&name, &flipped),
            Err(Unreadable::Checksum { .. })
        ));
        assert!(matches!(
            decode(&name, b""),
            Err(Unreadable::Checksum { .. })
        ));
    }

    #[test]
    fn a_body_that_is_not_the_named_batch_is_unreadable() {
        let check = |content: &[u8], kind: RecordKind, records: u64| {
            let name = FileName {
                id: Uuid::now_v7(),
                kind,
                records,
                crc: crc32fast::hash(content),
            };
            decode(&name, content).unwrap_err()
        };
        let b = batch(2);
        assert!(matches!(
            check(b.json_body(), RecordKind::Span, 2),
            Unreadable::Body(_)
        ));
        assert!(matches!(
            check(b.json_body(), RecordKind::Trace, 3),
            Unreadable::Body(_)
        ));
        assert!(matches!(
            check(br#"{"traces":[{"name":"no id"}]}"#, RecordKind::Trace, 1),
            Unreadable::Body(_)
        ));
        assert!(matches!(
            check(b"not json", RecordKind::Trace, 1),
            Unreadable::Body(_)
        ));
    }
}
