//! CPU-heavy work (token counting) off the async workers: on the blocking
//! pool, at most one task per core but one, so that a flood of large
//! bodies always leaves a core to the workers that serve everything else.
//! Waiting for a slot parks no thread. Work on short texts (at most
//! [`INLINE_BYTES`]) is done in place. Every task counts tokens on as many
//! threads as it holds slots ([`skein_providers::tokens::with_threads`]),
//! and only a count of a long text asks for more slots, taking those that
//! are free; so the budget holds however the work is split (the server sets
//! counts outside the gate, which are short, to one thread:
//! `tokens::set_threads(1)`).

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
    run_wide(gate(), 0, move |_| f()).await
}

/// Runs `f` on the blocking pool once a slot of `gate` is free, with up to
/// `more` further slots that are free right then (it never waits for
/// those); `f` is told how many slots it holds, at least one, and the token
/// counts it makes use at most that many threads.
async fn run_wide<T, F>(gate: Arc<Semaphore>, more: u32, f: F) -> Result<T, EngineError>
where
    F: FnOnce(usize) -> T + Send + 'static,
    T: Send + 'static,
{
    let permit = gate
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| EngineError::Panicked("the CPU gate is closed".into()))?;
    let extra = (1..=more)
        .rev()
        .find_map(|n| gate.clone().try_acquire_many_owned(n).ok().map(|p| (n, p)));
    let slots = 1 + extra.as_ref().map_or(0, |(n, _)| *n as usize);
    tokio::task::spawn_blocking(move || {
        let _permits = (permit, extra);
        skein_providers::tokens::with_threads(slots, || f(slots))
    })
    .await
    .map_err(|e| EngineError::Panicked(format!("CPU task: {e}")))
}

/// Counts `bytes` of text, the longest text `longest` bytes: on as many
/// threads as free CPU slots allow (up to four) when that text is long
/// enough to be split, else as [`run_for`].
async fn run_counting<T, F>(bytes: usize, longest: usize, f: F) -> Result<T, EngineError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if longest < skein_providers::tokens::PARALLEL_FROM {
        return run_for(bytes, f).await;
    }
    run_wide(gate(), 3, move |_| f()).await
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
    let longest = texts.iter().map(String::len).max().unwrap_or(0);
    run_counting(bytes, longest, move || {
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
    run_counting(text.len(), text.len(), move || {
        let n = skein_providers::tokens::count(&text);
        (text, n)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::run_wide;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn slots(n: usize) -> usize {
        n
    }

    /// A task takes the further slots that are free, never more, and gives
    /// them all back: the CPU budget holds however a count is split.
    #[tokio::test]
    async fn a_task_takes_only_the_free_slots_and_gives_them_back() {
        let within = |f| tokio::time::timeout(std::time::Duration::from_secs(10), f);
        let gate = Arc::new(Semaphore::new(3));
        let all = within(run_wide(gate.clone(), 3, slots)).await;
        assert_eq!(all.unwrap().unwrap(), 3);
        assert_eq!(gate.available_permits(), 3);
        let held = gate.clone().try_acquire_owned().unwrap();
        let some = within(run_wide(gate.clone(), 3, slots)).await;
        assert_eq!(some.unwrap().unwrap(), 2);
        drop(held);
        let one = within(run_wide(Arc::new(Semaphore::new(1)), 3, slots)).await;
        assert_eq!(one.unwrap().unwrap(), 1);
        let asked_none = within(run_wide(gate.clone(), 0, slots)).await;
        assert_eq!(asked_none.unwrap().unwrap(), 1);
        assert_eq!(gate.available_permits(), 3);
    }

    /// The token counts a task makes use as many threads as it holds slots.
    #[tokio::test]
    async fn a_tasks_counts_use_the_slots_it_holds() {
        let within = |f| tokio::time::timeout(std::time::Duration::from_secs(10), f);
        let gate = Arc::new(Semaphore::new(3));
        let wide = within(run_wide(gate.clone(), 3, counting_threads)).await;
        assert_eq!(wide.unwrap().unwrap(), 3);
        let narrow = within(run_wide(gate, 0, counting_threads)).await;
        assert_eq!(narrow.unwrap().unwrap(), 1);
    }

    fn counting_threads(_: usize) -> usize {
        skein_providers::tokens::threads()
    }
}
