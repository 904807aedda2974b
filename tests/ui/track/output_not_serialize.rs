use tower_opik::track;

struct Response;

#[track]
fn complete(prompt: String) -> Result<Response, std::io::Error> {
    let _ = prompt;
    Ok(Response)
}

fn main() {
    let _ = complete(String::new());
}
