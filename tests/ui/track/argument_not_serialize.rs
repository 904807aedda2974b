use tower_opik::track;

struct Client;

#[track(type = "llm")]
async fn complete(client: &Client, prompt: String) -> String {
    let _ = client;
    prompt
}

fn main() {
    let _ = complete(&Client, String::new());
}
