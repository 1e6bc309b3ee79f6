//! Crash points for the integration tests: with the `fault-injection` feature, a function exits
//! at a named step when `BRIDGE_TEST_CRASH_AT` names it, so tests can prove that a retry after a
//! crash at any step completes without duplicates. Without the feature this is a no-op, so
//! release builds (`make package`) carry none of it.

#[cfg(feature = "fault-injection")]
pub fn crash_point(name: &str) {
    if std::env::var("BRIDGE_TEST_CRASH_AT").is_ok_and(|at| at == name) {
        tracing::warn!(step = name, "crashing on purpose (BRIDGE_TEST_CRASH_AT)");
        std::process::exit(70);
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn crash_point(_name: &str) {}
