//! CPU-heavy work (token counting) off the async workers: on the blocking
//! pool, at most one task per core but one, so that a flood of large
//! bodies always leaves a core to the workers that serve everything else.
//! Waiting for a slot parks no thread. Work on short texts (at most
//! [`INLINE_BYTES`]) is done in place.

use crate::EngineError;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

fn gate() -> Arc<Semaphore> {
    static GATE: OnceLock<Arc<Semaphore>> = OnceLock::new();
    GATE.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Arc::new(Semaphore::new(cores.saturating_sub(1).max(1)))
    })
    .clone()
}

/// Runs `f` on the blocking pool once a CPU slot is free.
pub async fn run<T, F>(f: F) -> Result<T, EngineError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let permit = gate()
        .acquire_owned()
        .await
        .map_err(|_| EngineError::Panicked("the CPU gate is closed".into()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(|e| EngineError::Panicked(format!("CPU task: {e}")))
}

/// Work on at most this many bytes of text is done where it is asked for:
/// a hop to the blocking pool costs more than counting a short chat
/// message, and even adversarial text this short counts in well under a
/// millisecond.
pub const INLINE_BYTES: usize = 1024;

/// Runs `f` on the blocking pool (as [`run`]) when `bytes` of text are more
/// than [`INLINE_BYTES`], else right here.
pub async fn run_for<T, F>(bytes: usize, f: F) -> Result<T, EngineError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if bytes <= INLINE_BYTES {
        Ok(f())
    } else {
        run(f).await
    }
}

/// The token count of each text, counted off the async workers (unless
/// they are short).
pub async fn count_tokens(texts: Vec<String>) -> Result<(Vec<String>, Vec<u32>), EngineError> {
    let bytes = texts.iter().map(String::len).sum();
    run_for(bytes, move || {
        let counts = texts
            .iter()
            .map(|t| skein_providers::tokens::count(t))
            .collect();
        (texts, counts)
    })
    .await
}

/// The token count of one text, counted off the async workers (unless it
/// is short).
pub async fn count_one(text: String) -> Result<(String, u32), EngineError> {
    run_for(text.len(), move || {
        let n = skein_providers::tokens::count(&text);
        (text, n)
    })
    .await
}
