//! Two services, one Opik trace: a client service creates the trace and calls a server
//! service's `POST /generate_response` through the propagation middleware; the server, behind
//! `OpikLayer`, answers from a handler that opens a nested `llm` span. Then the same through
//! `POST /generate_response/stream`, answered as server-sent events from a streamed `llm`
//! span (time to first token, the whole answer and the usage recorded when it ends).
//!
//! ```text
//! cargo run --example axum_client_server                      # both services + LocalOpik, prints the trace
//! cargo run --example axum_client_server -- local-opik --addr 127.0.0.1:5173
//! cargo run --example axum_client_server -- server --addr 127.0.0.1:3000
//! cargo run --example axum_client_server -- client --server-url http://127.0.0.1:3000 [--prompt TEXT]
//! cargo run --release --example axum_client_server -- soak --seconds 180   # see scripts/soak.sh
//! ```
//!
//! With `OPIK_URL_OVERRIDE` set (and `OPIK_API_KEY` / `OPIK_WORKSPACE` as needed) the
//! one-command run sends to that Opik instead of an embedded LocalOpik. The `server` and
//! `client` modes read their Opik settings from the environment like the official SDKs.

mod client;
mod server;
mod soak;

use std::process::ExitCode;
use std::time::Duration;

use tower_opik::testing::LocalOpik;
use tower_opik::tracing::{GenAiSpans, Mirror, OpikTracingLayer};
use tower_opik::{OpikConfig, SpanStore};
use tracing::Level;
use tracing_subscriber::filter::{FilterExt, Targets};
use tracing_subscriber::prelude::*;

/// How long a process waits for its spans to reach Opik before it exits.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    // Logs as usual, and `tracing` spans into Opik: the GenAI spans of LLM libraries, plus
    // every span of this program (a per-layer filter, so the log level does not hide them).
    let opik_spans = Targets::new().with_target("axum_client_server", Level::INFO);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_filter(filter()),
        )
        .with(
            OpikTracingLayer::builder()
                .mirror(Mirror::All)
                .build()
                .with_filter(GenAiSpans.or(opik_spans)),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => demo().await,
        Some("server") => {
            server::run(&flag(&args, "--addr").unwrap_or("127.0.0.1:3000".into())).await
        }
        Some("client") => match flag(&args, "--server-url") {
            Some(url) => {
                client::run(
                    &url,
                    &flag(&args, "--prompt").unwrap_or(DEFAULT_PROMPT.into()),
                )
                .await
            }
            None => Err("client needs --server-url URL".into()),
        },
        Some("soak") => {
            let seconds = flag(&args, "--seconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(180);
            soak::run(seconds).await
        }
        Some("local-opik") => {
            local_opik(&flag(&args, "--addr").unwrap_or("127.0.0.1:5173".into())).await
        }
        Some(other) => {
            Err(format!("unknown mode {other:?}: use server, client, local-opik or soak").into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const DEFAULT_PROMPT: &str = "What is distributed tracing?";

fn filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The one-command run: LocalOpik (unless OPIK_URL_OVERRIDE is set), both services on
/// loopback, one call, flush, and the trace printed as a tree.
async fn demo() -> Result {
    let remote = std::env::var("OPIK_URL_OVERRIDE").is_ok_and(|v| !v.trim().is_empty());
    let (local, config) = if remote {
        (None, OpikConfig::from_env()?)
    } else {
        let opik = LocalOpik::start().await?;
        let config = OpikConfig::local(&opik.base_url());
        println!(
            "LocalOpik (the embedded stand-in for Opik) listens on {}",
            opik.base_url()
        );
        (Some(opik), config)
    };
    // Two services, two stores, as two processes would have; same project.
    let server_store = SpanStore::builder().config(config.clone()).build()?;
    let client_store = SpanStore::builder().config(config.clone()).build()?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let server_url = format!("http://{}", listener.local_addr()?);
    let app = server::app(server_store.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("server service listens on {server_url}");

    let trace_id = client::call(&client_store, &server_url, DEFAULT_PROMPT).await?;
    println!("client called the server: trace {trace_id}");
    let streamed_id = client::call_stream(&client_store, &server_url, DEFAULT_PROMPT).await?;
    println!("client called the server's streaming route: trace {streamed_id}");
    server.abort();
    for (who, store) in [("client", &client_store), ("server", &server_store)] {
        let report = store.shutdown(FLUSH_TIMEOUT).await;
        println!("{who} store: {report}");
        if !report.completed || report.stats.failed + report.stats.dropped > 0 {
            return Err(format!("the {who} service could not deliver its spans: {report}").into());
        }
    }
    match local {
        Some(opik) => {
            for id in [trace_id, streamed_id] {
                let tree = opik
                    .trace_tree(id.to_string())
                    .ok_or("the trace did not reach LocalOpik")?;
                println!("\n{tree}");
            }
            let spans = opik.spans();
            let named = |name: &str| {
                spans
                    .iter()
                    .find(|s| s["name"] == name)
                    .ok_or(format!("the span {name:?} did not reach LocalOpik"))
            };
            let chat = named("chat gpt-4o-mini")?;
            println!(
                "the GenAI tracing span: model {}, provider {}, usage {}",
                chat["model"], chat["provider"], chat["usage"]
            );
            let streamed = named("llm call (streamed)")?;
            println!(
                "the streamed llm span: ttft {} ms, output {}, usage {}",
                streamed["ttft"], streamed["output"], streamed["usage"]
            );
        }
        None => println!(
            "\nsent traces {trace_id} and {streamed_id} to {} (workspace {:?}, project {:?}): open them in the Opik UI",
            config.url(),
            config.workspace(),
            config.project_name()
        ),
    }
    Ok(())
}

/// A LocalOpik as its own process, for the two-process run: point both services at it with
/// `OPIK_URL_OVERRIDE=http://ADDR/api/`. Prints each trace as it completes; stops on Ctrl-C.
async fn local_opik(addr: &str) -> Result {
    let opik = LocalOpik::builder().addr(addr.parse()?).start().await?;
    println!(
        "LocalOpik listens on {} (set OPIK_URL_OVERRIDE={})",
        opik.addr(),
        opik.base_url()
    );
    let mut printed = std::collections::HashSet::new();
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = shutdown_signal() => break,
            arrived = opik.wait_for_spans(seen + 1, Duration::from_secs(1)) => {
                if !arrived {
                    continue;
                }
            }
        }
        seen = opik.spans().len();
        for trace in opik.traces() {
            let id = trace["id"].as_str().unwrap_or_default().to_owned();
            if printed.insert(id.clone())
                && let Some(tree) = opik.trace_tree(&id)
            {
                println!("{tree}");
            }
        }
        // Traces whose owner has not written its trace record yet are printed later.
        printed.retain(|id| opik.trace(id).is_some());
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
