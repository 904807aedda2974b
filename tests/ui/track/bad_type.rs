use tower_opik::track;

#[track(type = "agent")]
fn answer() -> u32 {
    42
}

fn main() {
    answer();
}
