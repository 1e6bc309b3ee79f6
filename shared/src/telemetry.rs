//! JSON logs through `tracing`. The Lambda runtime opens a span per invocation carrying
//! `requestId`; handlers open one carrying `tenant`; the span list on every line carries both.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once per process (at cold start). `RUST_LOG` sets the level.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) is harmless, so the error is ignored on purpose.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .without_time()
        .try_init();
}
