//! The webhook JWT verifier on any bytes: never panics, accepts only HS256 tokens signed with the
//! client secret, and never the same token under another secret.
#![no_main]

use bridge::webhook_jwt::{sign_hs256, verify_bytes};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-client-secret";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    if verify_bytes(data, SECRET, "fuzz-client", NOW).is_ok() {
        assert!(verify_bytes(data, b"another-secret", "fuzz-client", NOW).is_err(), "verified under two secrets");
    }
    // Claims from the input, signed: verification decides on them without panicking.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        let token = sign_hs256(&claims, SECRET);
        let _ = verify_bytes(token.as_bytes(), SECRET, "fuzz-client", NOW);
    }
});
