//! Telling HTTP and EventBridge invocations apart on any JSON: never panics.
#![no_main]

use bridge::events::Trigger;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let _ = Trigger::classify(value);
});
