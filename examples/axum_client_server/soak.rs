//! The `soak` mode: both services under steady load for a while, LocalOpik injecting faults,
//! then a report of requests served, spans delivered and dropped, and peak memory.
//! Loopback only, bounded in time, stops by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode};
use tower_opik::testing::LocalOpik;
use tower_opik::{OpikConfig, SpanStore};

use crate::{DEFAULT_PROMPT, Result, client, server};

// The soak's load: 4 workers at about 50 requests a second each.

pub(crate) async fn run(seconds: u64) -> Result {
    let opik = LocalOpik::start().await?;
    let config = OpikConfig::local(&opik.base_url());
    let store = |c: &OpikConfig| {
        SpanStore::builder()
            .config(c.clone())
            .flush_interval(Duration::from_millis(500))
            .build()
    };
    let (server_store, client_store) = (store(&config)?, store(&config)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = server::app(server_store.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let faults = tokio::spawn(inject_faults(opik.faults().clone(), deadline));
    let served = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (store, url, served, failed) = (
            client_store.clone(),
            url.clone(),
            served.clone(),
            failed.clone(),
        );
        workers.push(tokio::spawn(async move {
            // Steady load: about 50 requests a second per worker.
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while Instant::now() < deadline {
                tick.tick().await;
                match client::call(&store, &url, DEFAULT_PROMPT).await {
                    Ok(_) => served.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    faults.await?;
    opik.faults().clear();
    server.abort();
    let mut recorded = 0;
    let mut dropped = 0;
    let mut lost = 0;
    for (who, store) in [("client", &client_store), ("server", &server_store)] {
        let report = store.shutdown(Duration::from_secs(120)).await;
        println!("{who} store: {report}");
        recorded += report.stats.recorded;
        dropped += report.stats.dropped;
        lost += report.stats.failed + report.stats.pending();
    }
    let delivered = (opik.spans().len() + opik.traces().len()) as u64;
    let faults_served = opik.faults().served();
    println!(
        "soak: {seconds} s, {} requests served, {} failed; {recorded} records queued, {delivered} delivered, \
         {dropped} dropped at the queue bound, {lost} lost after queueing; {faults_served} faults injected; peak RSS {} MiB",
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        peak_rss_mib().map_or_else(|| "?".to_owned(), |m| m.to_string()),
    );
    if failed.load(Ordering::Relaxed) > 0 || lost > 0 || delivered != recorded {
        return Err("the soak lost requests or spans".into());
    }
    Ok(())
}

/// Cycles through the faults a real backend shows: 503s, 429 with Retry-After, dropped
/// connections, slow answers, and calm periods. A new burst starts only once the last one
/// was served: faults come in episodes, as outages do, instead of piling up.
async fn inject_faults(faults: tower_opik::testing::Faults, deadline: Instant) {
    let mut round = 0u32;
    while Instant::now() < deadline {
        if faults.queued() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        match round % 5 {
            0 => faults.fail_next(10, StatusCode::SERVICE_UNAVAILABLE, HeaderMap::new()),
            1 => {
                let mut headers = HeaderMap::new();
                headers.insert("retry-after", HeaderValue::from_static("1"));
                faults.fail_next(3, StatusCode::TOO_MANY_REQUESTS, headers);
            }
            2 => faults.drop_next(5),
            3 => faults.delay_next(3, Duration::from_secs(2)),
            _ => {}
        }
        round += 1;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// The process's peak resident set (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}
