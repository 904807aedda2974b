//! The spool tests' set-up: a store aimed at an address, spooling to a directory, and what
//! the directory holds.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tower_opik::store::SpanStoreBuilder;
use tower_opik::{OpikConfig, SpanStore};

/// An address where nothing listens now (LocalOpik is started there later).
pub fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub fn url_of(addr: SocketAddr) -> String {
    format!("http://{addr}/")
}

/// A store aimed at `addr`, spooling to `dir`: a small queue and small batches, so that an
/// outage outlasts the queue quickly.
pub fn spooling_store(addr: SocketAddr, dir: &Path) -> SpanStoreBuilder {
    SpanStore::builder()
        .config(OpikConfig::local(&url_of(addr)))
        .queue_capacity(64)
        .max_batch_items(20)
        .flush_interval(Duration::from_millis(10))
        .request_timeout(Duration::from_secs(5))
        .retry(super::fast_retry())
        .spool_dir(dir)
}

/// Every record id in the spool's files (read as the JSON they are).
pub fn ids_in_spool(dir: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let body: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let (_, items) = body.as_object().unwrap().iter().next().unwrap();
            for item in items.as_array().unwrap() {
                ids.insert(item["id"].as_str().unwrap().to_owned());
            }
        }
    }
    ids
}

pub fn spool_files(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}
