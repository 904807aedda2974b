use tower_opik::track;

#[track(generations_aggregator = |items: &[String]| serde_json::json!(items.len()))]
fn complete(prompt: String) -> String {
    prompt
}

fn main() {
    complete(String::new());
}
