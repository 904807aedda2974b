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
//! `--help` (and `MODE --help`) lists the modes and their flags with their defaults.

mod client;
mod server;
mod soak;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
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
    // An unknown flag, a missing or bad value: clap says what is wrong and exits with 2.
    let cli = Cli::parse();
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
    let result = match cli.mode {
        None => demo().await,
        Some(Mode::Server { addr }) => server::run(&addr).await,
        Some(Mode::Client { server_url, prompt }) => client::run(&server_url, &prompt).await,
        Some(Mode::Soak { seconds }) => soak::run(seconds).await,
        Some(Mode::LocalOpik { addr }) => local_opik(addr).await,
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

/// Two services, one Opik trace.
///
/// With no mode: runs both services on loopback against an embedded LocalOpik (or the Opik
/// of OPIK_URL_OVERRIDE), makes one plain and one streamed call, and prints the traces.
#[derive(Parser)]
#[command(
    name = "axum_client_server",
    subcommand_value_name = "MODE",
    subcommand_help_heading = "Modes",
    after_help = "Each mode's flags, with their defaults: axum_client_server MODE --help"
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// The server service alone: serves until Ctrl-C / SIGTERM, then flushes its spans.
    ///
    /// Opik settings come from the environment (OPIK_URL_OVERRIDE, OPIK_API_KEY, ...).
    Server {
        /// Address to listen on, HOST:PORT.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3000")]
        addr: String,
    },
    /// The client service alone: one call to a running server, flush, exit.
    ///
    /// Opik settings come from the environment (OPIK_URL_OVERRIDE, OPIK_API_KEY, ...).
    Client {
        /// Base URL of the server service, e.g. http://127.0.0.1:3000.
        #[arg(long, value_name = "URL", value_parser = http_url)]
        server_url: String,
        /// The question sent to the server.
        #[arg(long, value_name = "TEXT", default_value = DEFAULT_PROMPT)]
        prompt: String,
    },
    /// Both services under load on loopback, LocalOpik injecting faults, for a while.
    ///
    /// Reports requests served, spans delivered and dropped, and peak memory. See
    /// scripts/soak.sh.
    Soak {
        /// How long the load runs, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 180)]
        seconds: u64,
    },
    /// A LocalOpik as its own process, printing each trace as it completes.
    ///
    /// Point both services at it with OPIK_URL_OVERRIDE=http://ADDR/api/. Stops on Ctrl-C.
    LocalOpik {
        /// Address to listen on, IP:PORT.
        #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:5173")]
        addr: SocketAddr,
    },
}

/// `--server-url`: an http or https URL, kept as written.
fn http_url(s: &str) -> std::result::Result<String, String> {
    let url = reqwest::Url::parse(s).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" if url.has_host() => Ok(s.to_owned()),
        "http" | "https" => Err("the URL has no host".into()),
        other => Err(format!("the scheme is {other:?}, not http or https")),
    }
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
async fn local_opik(addr: SocketAddr) -> Result {
    let opik = LocalOpik::builder().addr(addr).start().await?;
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
