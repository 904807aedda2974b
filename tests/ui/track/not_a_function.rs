use tower_opik::track;

#[track]
struct Model {
    name: String,
}

fn main() {
    let _ = Model { name: String::new() }.name;
}
