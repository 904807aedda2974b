use std::sync::Arc;

use super::*;
use crate::record::TraceRecord;
use crate::store::RecordKind;

fn batch(n: usize) -> ExportBatch {
    let records = (0..n)
        .map(|_| TraceRecord::new(crate::id::new_id(), "t", crate::Timestamp::now()).into())
        .collect();
    let mut batch = ExportBatch::from_records(RecordKind::Trace, records);
    batch.seal();
    batch
}

fn open(dir: &Path, max_bytes: u64) -> (Spool, Arc<Counters>) {
    let counters = Arc::new(Counters::default());
    let spool = Spool::open(dir, max_bytes, counters.clone()).unwrap();
    (spool, counters)
}

fn gauges(counters: &Counters) -> (u64, u64) {
    let stats = counters.snapshot();
    (stats.spool_records, stats.spool_bytes)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_batch_written_is_listed_read_back_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, counters) = open(dir.path(), DEFAULT_MAX_BYTES);
    let (first, second) = (batch(3), batch(2));
    spool.write(&first).unwrap();
    spool.write(&second).unwrap();
    let bytes = (first.json_len() + second.json_len()) as u64;
    assert_eq!(gauges(&counters), (5, bytes));

    let files = spool.list();
    assert_eq!(files.len(), 2);
    let back = spool.read(&files[0]).unwrap().expect("there");
    assert_eq!(back.json_body(), first.json_body(), "oldest first");
    assert_eq!(
        back.ids().collect::<Vec<_>>(),
        first.ids().collect::<Vec<_>>()
    );

    spool.remove(&files[0]);
    assert_eq!(gauges(&counters), (2, second.json_len() as u64));
    assert!(spool.read(&files[0]).unwrap().is_none(), "gone");
    spool.remove(&files[0]); // twice: counted once
    assert_eq!(gauges(&counters), (2, second.json_len() as u64));
    assert!(names(dir.path()).iter().all(|n| !n.ends_with(".tmp")));
}

#[test]
fn a_full_spool_refuses_the_newest_and_keeps_its_bytes_exact() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(4);
    let size = b.json_len() as u64;
    let (spool, counters) = open(dir.path(), size * 2 + size / 2);
    spool.write(&b).unwrap();
    spool.write(&batch(4)).unwrap();
    assert!(matches!(spool.write(&batch(4)), Err(WriteError::Full)));
    assert_eq!(gauges(&counters), (8, size * 2));
    assert_eq!(spool.list().len(), 2);
    // Room again once one is delivered.
    spool.remove(&spool.list()[0]);
    spool.write(&batch(4)).unwrap();
}

#[test]
fn opening_counts_an_earlier_run_removes_cut_writes_and_leaves_other_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let b = batch(3);
    {
        let (spool, _) = open(dir.path(), DEFAULT_MAX_BYTES);
        spool.write(&b).unwrap();
        spool.unlock();
    }
    std::fs::write(
        dir.path().join("0193-traces-1-00000000.json.tmp"),
        b"{\"tra",
    )
    .unwrap();
    std::fs::write(dir.path().join("README.txt"), b"not ours").unwrap();
    let (spool, counters) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert_eq!(gauges(&counters), (3, b.json_len() as u64));
    let names = names(dir.path());
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert!(names.contains(&"README.txt".to_owned()), "{names:?}");
    assert_eq!(spool.list().len(), 1);
}

#[test]
fn a_damaged_file_is_set_aside_and_counted_as_dropped_from_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, counters) = open(dir.path(), DEFAULT_MAX_BYTES);
    let b = batch(6);
    spool.write(&b).unwrap();
    let files = spool.list();
    let path = dir.path().join(files[0].name.name());
    let mut content = std::fs::read(&path).unwrap();
    content[20] ^= 0x20;
    std::fs::write(&path, &content).unwrap();

    assert!(spool.read(&files[0]).unwrap().is_none());
    let stats = counters.snapshot();
    assert_eq!((stats.spool_dropped, stats.failed), (6, 0), "{stats}");
    assert_eq!(stats.losses[0].reason, LossReason::SpoolUnreadable);
    assert_eq!(gauges(&counters), (0, 0));
    assert!(spool.list().is_empty(), "not read again");
    let names = names(dir.path());
    assert!(
        names.iter().any(|n| n.ends_with(".json.corrupt")),
        "{names:?}"
    );
}

#[test]
fn a_directory_is_used_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    let err = Spool::open(dir.path(), 1, Arc::new(Counters::default())).unwrap_err();
    match &err {
        crate::Error::Spool { dir: d, source } => {
            assert_eq!(d, dir.path());
            assert_eq!(source.kind(), std::io::ErrorKind::ResourceBusy);
        }
        other => panic!("{other:?}"),
    }
    first.unlock();
    assert!(Spool::open(dir.path(), 1, Arc::new(Counters::default())).is_ok());
}

#[tokio::test]
async fn abandoning_wakes_every_waiter_and_takes_the_store_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path(), DEFAULT_MAX_BYTES);
    assert!(!spool.offline());
    let waiter = tokio::spawn(spool.abandoned());
    spool.set_outage(true);
    assert!(spool.offline());
    spool.set_outage(false);
    spool.abandon();
    waiter.await.unwrap();
    spool.abandoned().await; // at once, once abandoned
    assert!(spool.offline() && spool.is_abandoned());
}

#[test]
fn a_file_too_large_to_be_ours_is_set_aside_unread() {
    let dir = tempfile::tempdir().unwrap();
    let name = file::FileName {
        id: uuid::Uuid::now_v7(),
        kind: RecordKind::Span,
        records: 3,
        crc: 0,
    };
    // Sparse: no disk used.
    let big = File::create(dir.path().join(name.name())).unwrap();
    big.set_len(file::MAX_FILE_BYTES + 1).unwrap();
    let (spool, counters) = open(dir.path(), u64::MAX);
    let files = spool.list();
    assert!(spool.read(&files[0]).unwrap().is_none());
    let stats = counters.snapshot();
    assert_eq!(stats.spool_dropped, 3, "{stats}");
    assert!(stats.losses[0].last_message.contains("not read"), "{stats}");
    assert_eq!(gauges(&counters), (0, 0));
}

#[test]
fn a_file_that_cannot_be_deleted_is_not_listed_again() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, counters) = open(dir.path(), DEFAULT_MAX_BYTES);
    spool.write(&batch(2)).unwrap();
    let files = spool.list();
    // A directory in the file's place: `remove_file` fails (as on a read-only file system).
    let path = dir.path().join(files[0].name.name());
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();
    spool.remove(&files[0]);
    assert!(
        spool
            .undeletable
            .lock()
            .unwrap()
            .contains(&files[0].name.id),
        "never listed, so never sent, again by this store"
    );
    assert!(spool.list().is_empty());
    assert_eq!(gauges(&counters), (0, 0));
}
