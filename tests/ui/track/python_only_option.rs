use tower_opik::track;

#[track(flush = true)]
fn answer() -> u32 {
    42
}

fn main() {
    answer();
}
