//! The disk spool's faults and configuration, over loopback with LocalOpik: one store per
//! directory; a directory that cannot be made, is removed while in use, or cannot be
//! written (never worse than no spool); a bound of zero; a runtime stopped without
//! shutdown; `OPIK_SPOOL_DIR`, `OPIK_SPOOL_MAX_BYTES` and the config file.
#![cfg(feature = "testing")]

mod common;

use std::path::Path;
use std::time::Duration;

use tower_opik::store::LossReason;
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, SpanStore};

use common::FLUSH;
use common::spool::{free_addr, spool_files, spooling_store, url_of};

#[tokio::test]
async fn one_store_per_spool_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = spooling_store(free_addr(), dir.path()).build().unwrap();
    let err = spooling_store(free_addr(), dir.path())
        .build()
        .expect_err("the directory is taken");
    let text = err.to_string();
    assert!(text.contains("in use by another span store"), "{text}");
    assert!(matches!(err, tower_opik::Error::Spool { .. }));
    first.shutdown(FLUSH).await;
    drop(first);
    // Released with the store.
    let again = spooling_store(free_addr(), dir.path()).build();
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test]
async fn a_spool_directory_that_cannot_be_made_is_an_error_at_build() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = spooling_store(free_addr(), &file.path().join("spool"))
        .build()
        .expect_err("a file is in the way");
    assert!(matches!(err, tower_opik::Error::Spool { .. }), "{err}");
    assert!(err.to_string().contains("spool directory"), "{err}");
}

#[tokio::test]
async fn a_spool_directory_removed_while_in_use_is_made_again() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("spool");
    let store = spooling_store(free_addr(), &dir)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    store.root_span("before").end();
    store.flush(FLUSH).await;
    assert_eq!(store.stats().spool_records, 2);
    std::fs::remove_dir_all(&dir).unwrap(); // a tmp cleaner
    store.root_span("after").end();
    let report = store.flush(FLUSH).await;
    let stats = &report.stats;
    assert_eq!((stats.spooled, stats.failed), (4, 0), "{report}");
    let files = spool_files(&dir, ".json");
    assert_eq!(files.len(), 2, "made again, the new batches in it");
    // The gauges say what is on disk now: the two removed records are gone.
    assert_eq!(stats.spool_records, 2, "{report}");
    let on_disk: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert_eq!(stats.spool_bytes, on_disk, "{report}");
    // Locked again: a second store cannot take it.
    assert!(spooling_store(free_addr(), &dir).build().is_err());
}

#[tokio::test]
async fn a_spool_that_cannot_be_written_is_never_worse_than_no_spool() {
    let opik = LocalOpik::start().await.unwrap();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("spool");
    let store = spooling_store(opik.addr(), &dir)
        .flush_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    // A file where the directory was: nothing can be written.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"in the way").unwrap();
    // A blip: the spool cannot take the batch, so it is retried in memory and delivered.
    let unavailable = http::StatusCode::SERVICE_UNAVAILABLE;
    opik.faults()
        .fail_next(2, unavailable, http::HeaderMap::new());
    store.root_span("job").end();
    let report = store.flush(FLUSH).await;
    let stats = &report.stats;
    assert!(report.completed, "{report}");
    assert_eq!(
        (stats.sent, stats.failed, stats.spooled),
        (2, 0, 0),
        "{report}"
    );

    // A longer outage: retried in memory as the policy allows, then counted under the
    // spool's reason.
    opik.faults()
        .fail_next(1000, unavailable, http::HeaderMap::new());
    store.root_span("lost").end();
    let report = store.flush(FLUSH).await;
    let stats = &report.stats;
    assert_eq!((stats.failed, stats.spool_dropped), (2, 2), "{report}");
    let loss = stats
        .losses
        .iter()
        .find(|l| l.reason == LossReason::SpoolUnwritable)
        .expect("counted as the spool's");
    assert!(
        loss.last_message.contains("given up after retries"),
        "{report}"
    );
}

#[tokio::test]
async fn a_spool_of_zero_bytes_retries_in_memory_as_no_spool_would() {
    let opik = LocalOpik::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = spooling_store(opik.addr(), dir.path())
        .flush_interval(Duration::from_secs(3600))
        .spool_max_bytes(0)
        .build()
        .unwrap();
    let unavailable = http::StatusCode::SERVICE_UNAVAILABLE;
    opik.faults()
        .fail_next(3, unavailable, http::HeaderMap::new());
    store.root_span("job").end();
    let report = store.flush(FLUSH).await;
    let stats = &report.stats;
    assert_eq!(
        (stats.sent, stats.failed, stats.spooled),
        (2, 0, 0),
        "{report}"
    );
}

#[test]
fn a_runtime_stopped_without_shutdown_leaves_what_was_queued_in_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (store, ids) = runtime.block_on(async {
        let store = spooling_store(free_addr(), dir.path())
            .flush_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        let ids: Vec<String> = (0..10)
            .map(|_| {
                let span = store.root_span("job");
                let id = span.id().unwrap().to_string();
                span.end();
                id
            })
            .collect();
        (store, ids)
    });
    drop(runtime); // no shutdown
    let stats = store.stats();
    assert_eq!(
        (stats.spooled, stats.failed, stats.pending()),
        (20, 0, 0),
        "{stats}"
    );
    drop(store);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let opik = LocalOpik::start().await.unwrap();
        let store = spooling_store(opik.addr(), dir.path()).build().unwrap();
        let report = store.flush(FLUSH).await;
        assert_eq!(report.stats.replayed, 20, "{report}");
        for id in &ids {
            assert_eq!(opik.write_count(id), 1, "span {id} delivered once");
        }
    });
}

#[test]
fn the_spool_comes_from_opik_spool_dir_and_a_bad_size_is_an_error() {
    let build = |pairs: &[(&str, &str)]| {
        OpikConfig::builder()
            .no_config_file()
            .environment(pairs.iter().copied())
            .build()
    };
    let config = build(&[
        ("OPIK_SPOOL_DIR", "/var/spool/opik"),
        ("OPIK_SPOOL_MAX_BYTES", "512 MiB"),
    ])
    .unwrap();
    assert_eq!(config.spool_dir(), Some(Path::new("/var/spool/opik")));
    assert_eq!(config.spool_max_bytes(), Some(512 << 20));
    assert_eq!(
        build(&[("OPIK_SPOOL_MAX_BYTES", "1073741824")])
            .unwrap()
            .spool_max_bytes(),
        Some(1 << 30)
    );
    let home = build(&[("OPIK_SPOOL_DIR", "~/spool"), ("HOME", "/home/me")]).unwrap();
    assert_eq!(home.spool_dir(), Some(Path::new("/home/me/spool")));
    let unset = build(&[]).unwrap();
    assert_eq!((unset.spool_dir(), unset.spool_max_bytes()), (None, None));
    for bad in ["lots", "-1", "1.5.2 GB", "12 parsecs"] {
        let err = build(&[("OPIK_SPOOL_MAX_BYTES", bad)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid size") && err.contains("OPIK_SPOOL_MAX_BYTES"),
            "{bad:?}: {err}"
        );
    }
    // Blank is unset, as for every OPIK_* variable.
    let blank = build(&[("OPIK_SPOOL_DIR", "  "), ("OPIK_SPOOL_MAX_BYTES", "")]).unwrap();
    assert_eq!((blank.spool_dir(), blank.spool_max_bytes()), (None, None));
    // The config file's keys, as `~/.opik.config` holds them.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "[opik]\nworkspace = w\n[tower_opik]\nspool_dir = /data/opik-spool\nspool_max_bytes = 2 GiB\n",
    )
    .unwrap();
    let from_file = OpikConfig::builder()
        .config_file(file.path())
        .environment([("OPIK_WORKSPACE", "default")])
        .build()
        .unwrap();
    assert_eq!(from_file.spool_dir(), Some(Path::new("/data/opik-spool")));
    assert_eq!(from_file.spool_max_bytes(), Some(2 << 30));
}

#[tokio::test]
async fn a_store_takes_its_spool_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = OpikConfig::builder()
        .url(url_of(free_addr()))
        .no_config_file()
        .ignore_environment()
        .spool_dir(dir.path())
        .spool_max_bytes(1 << 20)
        .build()
        .unwrap();
    let store = SpanStore::builder().config(config).build().unwrap();
    store.root_span("job").end();
    let report = store.shutdown(FLUSH).await;
    assert_eq!(report.stats.spooled, 2, "{report}");
    assert_eq!(spool_files(dir.path(), ".json").len(), 2);
}
