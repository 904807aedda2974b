use tower_opik::track;

#[track(nme = "typo")]
fn answer() -> u32 {
    42
}

fn main() {
    answer();
}
