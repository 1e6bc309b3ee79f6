//! The OAuth state decoder on any string: never panics, and accepts only what the deployment's
//! key signed (the same state under any other key is refused).
#![no_main]

use bridge::oauth::StateSigner;
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let signer = StateSigner::new(vec![42u8; 32]);
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    if signer.verify(text, now).is_ok() {
        let other = StateSigner::new(vec![43u8; 32]);
        assert!(other.verify(text, now).is_err(), "a state verified under two keys: {text:?}");
    }
});
