//! The two-service example, run as users run it: one command, and as two processes.
#![cfg(all(feature = "testing", feature = "axum", feature = "reqwest-middleware"))]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tower_opik::testing::LocalOpik;

/// `cargo test` builds the examples next to the test binaries.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join("axum_client_server");
    assert!(
        path.exists(),
        "{} not built (cargo test builds examples)",
        path.display()
    );
    // `cargo test --test example` alone does not build examples: catch a binary older than
    // the example's own sources rather than test yesterday's command line.
    let built = std::fs::metadata(&path).unwrap().modified().unwrap();
    let sources =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/axum_client_server");
    for file in std::fs::read_dir(sources).unwrap() {
        let file = file.unwrap().path();
        let edited = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert!(
            edited <= built,
            "{} is older than {}: run `cargo build --all-features --example axum_client_server` \
             (or the whole `cargo test`, which builds examples) first",
            path.display(),
            file.display()
        );
    }
    path
}

/// Lines of a tree printed by `TraceTree`'s Display: (depth, name, type).
fn tree_lines(text: &str) -> Vec<(usize, String, String)> {
    text.lines()
        .filter_map(|l| {
            let (indent, rest) = l.split_once("└─ ")?;
            let (name, rest) = rest.split_once(" [")?;
            let ty = rest.split(']').next()?;
            Some((indent.len() / 3, name.to_owned(), ty.to_owned()))
        })
        .collect()
}

fn expected_tree() -> Vec<(usize, String, String)> {
    vec![
        (1, "client: ask".into(), "general".into()),
        (2, "POST /generate_response".into(), "general".into()),
        (3, "retrieve".into(), "general".into()),
        (3, "build prompt".into(), "general".into()),
        (3, "chat gpt-4o-mini".into(), "llm".into()),
    ]
}

/// The streamed call's tree, printed after the plain one by the one-command run.
fn expected_streamed_tree() -> Vec<(usize, String, String)> {
    vec![
        (1, "client: ask (streamed)".into(), "general".into()),
        (2, "POST /generate_response/stream".into(), "general".into()),
        (3, "llm call (streamed)".into(), "llm".into()),
    ]
}

#[test]
fn the_one_command_run_prints_one_trace_client_server_llm() {
    let output = Command::new(example())
        .env_remove("OPIK_URL_OVERRIDE")
        .env("OPIK_CONFIG_PATH", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let both: Vec<_> = expected_tree()
        .into_iter()
        .chain(expected_streamed_tree())
        .collect();
    assert_eq!(tree_lines(&stdout), both, "{stdout}");
    assert!(stdout.contains("trace \"client: ask\""), "{stdout}");
    // The streamed llm span: its time to first token, the whole answer, the usage of its
    // last chunk.
    let streamed = stdout
        .lines()
        .find(|l| l.starts_with("the streamed llm span:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        streamed.contains(r#"output {"output":"A short streamed answer to: "#),
        "{streamed}"
    );
    assert!(streamed.contains(r#""total_tokens":"#), "{streamed}");
    // The GenAI `tracing` span, mapped by the tracing layer.
    let chat = stdout
        .lines()
        .find(|l| l.starts_with("the GenAI tracing span:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        chat.contains(r#"model "gpt-4o-mini-2024-07-18", provider "openai""#),
        "{chat}"
    );
    assert!(chat.contains(r#""prompt_tokens":"#), "{chat}");
    let llm_line = stdout
        .lines()
        .find(|l| l.contains("llm call (streamed) [llm]"))
        .unwrap();
    assert!(llm_line.contains(" ttft "), "{llm_line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_two_process_run_gives_the_same_tree() {
    let opik = LocalOpik::start().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(example())
        .args(["server", "--addr", &addr])
        .env("OPIK_URL_OVERRIDE", opik.base_url())
        .env("OPIK_CONFIG_PATH", "")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Wait for the server to say it listens.
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("listens on"), "{first}");

    let client = Command::new(example())
        .args([
            "client",
            "--server-url",
            &format!("http://{addr}"),
            "--prompt",
            "hello",
        ])
        .env("OPIK_URL_OVERRIDE", opik.base_url())
        .env("OPIK_CONFIG_PATH", "")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&client.stdout);
    assert!(
        client.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let trace_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("trace id: "))
        .unwrap()
        .to_owned();

    // SIGTERM: the server drains and flushes its spans before it exits.
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "server exit: {status}");
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    assert!(
        rest.iter().any(|l| l.contains("server store: flushed")),
        "{rest:?}"
    );

    assert!(opik.wait_for_spans(3, Duration::from_secs(10)).await);
    let tree = opik.trace_tree(&trace_id).unwrap();
    assert_eq!(tree_lines(&tree.to_string()), expected_tree(), "{tree}");
    let llm = tree.roots()[0].children()[0]
        .children()
        .iter()
        .find(|n| n.name() == "chat gpt-4o-mini")
        .unwrap();
    // The GenAI span's response model wins over the requested one.
    assert_eq!(llm.span()["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(llm.span()["provider"], "openai");
    let usage = &llm.span()["usage"];
    assert_eq!(
        usage["total_tokens"].as_i64().unwrap(),
        usage["prompt_tokens"].as_i64().unwrap() + usage["completion_tokens"].as_i64().unwrap()
    );
    assert_eq!(llm.span()["input"]["messages"][1]["content"], "hello");
    assert_eq!(llm.span()["output"]["messages"][0]["role"], "assistant");
    assert!(
        opik.requests().iter().all(|r| r.status == 204),
        "{:?}",
        opik.requests()
    );
}

/// Runs the example with `args` (no Opik in reach), killing it if it outlives `limit`: a
/// command line that should be rejected must not start a service that waits for Ctrl-C.
fn run_briefly(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let mut child = Command::new(example())
        .args(args)
        .env_remove("OPIK_URL_OVERRIDE")
        .env("OPIK_CONFIG_PATH", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let limit = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > limit {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} still ran after 20 s\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A rejected command line: clap's error on stderr, pointing to `--help` (with the usage
/// line too for an unknown or missing argument), exit code 2, nothing run.
fn assert_rejected(args: &[&str], names: &[&str]) {
    let (status, stdout, stderr) = run_briefly(args);
    assert_eq!(status.code(), Some(2), "{args:?}\n{stdout}\n{stderr}");
    assert!(stderr.starts_with("error: "), "{args:?}\n{stderr}");
    assert!(
        stderr.contains("For more information, try '--help'."),
        "{args:?}\n{stderr}"
    );
    for name in names {
        assert!(stderr.contains(name), "{args:?}: no {name:?} in\n{stderr}");
    }
    assert!(!stdout.contains("listens on"), "{args:?}\n{stdout}");
}

#[test]
fn a_misspelt_flag_is_rejected_with_a_usage_message() {
    assert_rejected(
        &["server", "--adr", "1"],
        &[
            "unexpected argument '--adr'",
            "similar argument exists: '--addr'",
            "Usage: axum_client_server server",
        ],
    );
    assert_rejected(&["--adr", "1"], &["unexpected argument '--adr'"]);
}

#[test]
fn a_bad_value_is_rejected_with_a_usage_message() {
    assert_rejected(
        &["soak", "--seconds", "abc"],
        &["invalid value 'abc'", "--seconds"],
    );
    assert_rejected(
        &["local-opik", "--addr", "localhost"],
        &["invalid value 'localhost'", "--addr"],
    );
    assert_rejected(
        &["client", "--server-url", "127.0.0.1:3000"],
        &["invalid value '127.0.0.1:3000'", "--server-url"],
    );
}

#[test]
fn a_flag_without_its_value_is_rejected_with_a_usage_message() {
    assert_rejected(&["server", "--addr"], &["a value is required for '--addr"]);
    assert_rejected(
        &["soak", "--seconds"],
        &["a value is required for '--seconds"],
    );
    assert_rejected(
        &["client", "--server-url", "http://127.0.0.1:1", "--prompt"],
        &["a value is required for '--prompt"],
    );
    assert_rejected(
        &["client"],
        &[
            "required",
            "--server-url <URL>",
            "Usage: axum_client_server client",
        ],
    );
    assert_rejected(&["serve"], &["unrecognized subcommand 'serve'"]);
}

#[test]
fn help_lists_the_modes_and_their_flags_with_defaults() {
    let (status, stdout, stderr) = run_briefly(&["--help"]);
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Usage: axum_client_server [MODE]"),
        "{stdout}"
    );
    for mode in ["server", "client", "soak", "local-opik"] {
        assert!(stdout.contains(&format!("  {mode} ")), "{mode}: {stdout}");
    }
    let modes: [(&str, &[&str]); 4] = [
        (
            "server",
            &["--addr <HOST:PORT>", "[default: 127.0.0.1:3000]"],
        ),
        (
            "client",
            &[
                "--server-url <URL>",
                "--prompt <TEXT>",
                r#"[default: "What is distributed tracing?"]"#,
            ],
        ),
        (
            "soak",
            &["--seconds <SECONDS>", "in seconds", "[default: 180]"],
        ),
        (
            "local-opik",
            &["--addr <IP:PORT>", "[default: 127.0.0.1:5173]"],
        ),
    ];
    for (mode, flags) in modes {
        let (status, stdout, stderr) = run_briefly(&[mode, "--help"]);
        assert!(status.success(), "{mode}: {stdout}\n{stderr}");
        for flag in flags {
            assert!(stdout.contains(flag), "{mode}: no {flag:?} in\n{stdout}");
        }
    }
}
