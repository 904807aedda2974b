//! LocalOpik's batch decoding on arbitrary bytes: a 400 or 422, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in ["spans", "traces"] {
        if let Err((status, _)) = tower_opik::testing::validate_batch(kind, data) {
            assert!(status == 400 || status == 422);
        }
    }
});
