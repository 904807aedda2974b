use tower_opik::track;

#[track(capture_input = "no")]
fn answer() -> u32 {
    42
}

fn main() {
    answer();
}
