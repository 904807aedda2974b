use futures_util::Stream;
use tower_opik::track;

struct Token(u32);

#[track]
fn tokens(n: u32) -> impl Stream<Item = Token> {
    futures_util::stream::iter((0..n).map(Token))
}

fn main() {
    let _ = tokens(3);
}
