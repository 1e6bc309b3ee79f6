//! Crash points for the tests: with the `fault-injection` feature, a job stops dead at a named
//! step, so tests can prove that a redelivery after a crash at any step completes without
//! duplicates. Without the feature this is a no-op, so release builds (`make package`) carry
//! none of it.
//!
//! Two ways to crash, both keyed by the step's name:
//! - `BRIDGE_TEST_CRASH_AT=<step>`: the process exits (code 70). The Python integration tests
//!   run the real binaries this way.
//! - [`CrashSwitch`], in-process: a test runs the job inside [`CrashSwitch::run`]; at the named
//!   step the job's future never resumes and is dropped there, exactly as if the Lambda instance
//!   had died between that step and the next one. Nothing global changes: the switch is a
//!   task-local of the future it wraps, so concurrent tests (and concurrent deliveries inside one
//!   test) crash only where their own switch says.

#[cfg(feature = "fault-injection")]
pub use switch::{CrashSwitch, Ran};

#[cfg(feature = "fault-injection")]
pub async fn crash_point(name: &str) {
    if std::env::var("BRIDGE_TEST_CRASH_AT").is_ok_and(|at| at == name) {
        tracing::warn!(step = name, "crashing on purpose (BRIDGE_TEST_CRASH_AT)");
        std::process::exit(70);
    }
    switch::reached(name).await;
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub async fn crash_point(_name: &str) {}

#[cfg(feature = "fault-injection")]
mod switch {
    use std::future::Future;
    use std::sync::Arc;

    use tokio::sync::Notify;

    tokio::task_local! {
        static CRASH: CrashSwitch;
    }

    /// Crashes the job it wraps at one named step (see the module docs).
    #[derive(Clone, Debug)]
    pub struct CrashSwitch {
        at: String,
        reached: Arc<Notify>,
    }

    /// How a job run under a [`CrashSwitch`] ended.
    #[derive(Debug)]
    pub enum Ran<T> {
        /// It reached the step and was dropped there.
        Crashed,
        /// It never reached the step.
        Finished(T),
    }

    impl<T> Ran<T> {
        pub fn crashed(&self) -> bool {
            matches!(self, Self::Crashed)
        }
    }

    impl CrashSwitch {
        pub fn at(step: &str) -> Self {
            Self { at: step.to_owned(), reached: Arc::new(Notify::new()) }
        }

        /// Runs `job` until it finishes or reaches the step; in the second case the job is
        /// dropped at the step, with nothing after it run.
        pub async fn run<F: Future>(self, job: F) -> Ran<F::Output> {
            let reached = self.reached.clone();
            let job = CRASH.scope(self, job);
            tokio::select! {
                // The job first: once the step has parked it, it can't finish any more.
                biased;
                output = job => Ran::Finished(output),
                () = reached.notified() => Ran::Crashed,
            }
        }
    }

    /// At a crash point: parks the job forever when its switch names this step.
    pub(super) async fn reached(step: &str) {
        let hit = CRASH.try_with(|switch| (switch.at == step).then(|| switch.reached.clone()));
        if let Ok(Some(reached)) = hit {
            tracing::warn!(step, "crashing on purpose (CrashSwitch)");
            // A permit stays stored if `run` is not waiting yet, so the signal is never missed.
            reached.notify_one();
            std::future::pending::<()>().await;
        }
    }
}
