//! The `~/.opik.config` parser on arbitrary text: an error naming the line, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = tower_opik::config::check_config_file("f", text)
    {
        assert!(e.to_string().starts_with("f:"));
    }
});
