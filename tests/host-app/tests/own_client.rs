//! Linking tower-opik (default features) leaves the application's reqwest as it was: its
//! `Client::new()` does not panic ("No rustls crypto provider is configured", as when we
//! enabled reqwest's `rustls-no-provider`) and it sends requests.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A one-answer HTTP/1.1 server on 127.0.0.1: answers `{"ok":true}` to each connection.
async fn serve_json() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let body = br#"{"ok":true}"#;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn the_applications_own_reqwest_client_still_works() {
    // tower-opik is linked and in use: its default exporter, on its own TLS stack.
    let config = tower_opik::OpikConfig::local("https://opik.example.invalid/api/");
    let exporter = tower_opik::store::OpikRestExporter::new(&config)
        .expect("the default features bring an HTTPS client of our own");
    drop(exporter);

    // The application's client, as it builds it.
    let client = tower_opik_host_app::own_client();
    let addr = serve_json().await;
    let answer: serde_json::Value = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer, serde_json::json!({"ok": true}));
}

#[tokio::test]
async fn the_application_can_hand_its_client_to_the_exporter() {
    let config = tower_opik::OpikConfig::local("http://127.0.0.1:9/api/");
    let client = reqwest::Client::builder().build().unwrap();
    let exporter = tower_opik::store::OpikRestExporter::with_client(&config, client).unwrap();
    assert!(format!("{exporter:?}").contains("Reqwest"));
}
