//! `#[track]` misuse is a compile error that says what to do, at the attribute or the
//! argument at fault (the expected messages are the `.stderr` files in `tests/ui/track/`;
//! regenerate them with `TRYBUILD=overwrite` after a deliberate change).

#![cfg(feature = "macros")]

#[test]
fn misuse_is_a_compile_error_at_the_fault() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/track/*.rs");
}
