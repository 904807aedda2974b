use tower_opik::track;

#[track(ignore_arguments = ["clinet"])]
fn complete(client: u8, prompt: String) -> String {
    let _ = client;
    prompt
}

fn main() {
    complete(0, String::new());
}
