//! The store's own threads for its trips to the database.
//!
//! [`crate::Store::run`] used to hand each trip to tokio's blocking pool.
//! That pool starts a thread whenever none is idle at the moment a task
//! arrives, and a thread that just finished a trip is not idle yet; each
//! actix worker has a runtime (and a blocking pool) of its own. Under 32
//! connections the server grew to 100 and more threads for at most
//! `max_size` trips at once, each with its own stack and allocator cache:
//! about 0.5 MiB per thread, 45 MiB in `make bench`'s `load` rows. Here a
//! store has at most `max_size` threads (as many as trips may run at once,
//! see the store's gate), started when first needed, kept until the store
//! is dropped.

use crate::StoreError;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads taking jobs from one queue.
pub(crate) struct Trips {
    sender: mpsc::Sender<Job>,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    started: AtomicUsize,
    max: usize,
}

impl Trips {
    /// At most `max` threads (at least one).
    pub(crate) fn new(max: usize) -> Self {
        let (sender, receiver) = mpsc::channel();
        Self {
            sender,
            receiver: Arc::new(Mutex::new(receiver)),
            started: AtomicUsize::new(0),
            max: max.max(1),
        }
    }

    /// Runs `f` on one of the threads and returns its result; a panic in
    /// `f` becomes [`StoreError::Task`] (the thread goes on).
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
                .map_err(|panic| StoreError::Task(panic_message(panic.as_ref())));
            // The caller may have gone away meanwhile.
            let _ = tx.send(out);
        }))?;
        rx.await
            .map_err(|_| StoreError::Task("the trip ended without an answer".into()))?
    }

    fn submit(&self, job: Job) -> Result<(), StoreError> {
        let started = self
            .started
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            });
        if let Ok(n) = started {
            let receiver = Arc::clone(&self.receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("skein-db-{n}"))
                .spawn(move || work(&receiver));
            if let Err(e) = spawned {
                self.started.fetch_sub(1, Ordering::SeqCst);
                // The threads already started take the job, if any.
                if n == 0 {
                    return Err(StoreError::Unavailable(format!(
                        "no thread for database trips: {e}"
                    )));
                }
            }
        }
        self.sender
            .send(job)
            .map_err(|_| StoreError::Unavailable("the database threads are gone".into()))
    }
}

/// A thread's loop, until the store (and with it the sender) is dropped.
fn work(receiver: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = receiver.lock().recv();
        match job {
            // A job catches its own panics (see `Trips::run`).
            Ok(job) => job(),
            Err(mpsc::RecvError) => return,
        }
    }
}

/// The text a panic carried, if it is one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a trip to the database panicked".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    const BOUND: Duration = Duration::from_secs(10);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_trips_at_once_run_on_at_most_max_threads() {
        let trips = Arc::new(Trips::new(3));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let trips = Arc::clone(&trips);
            tasks.push(tokio::spawn(async move {
                trips
                    .run(|| {
                        std::thread::sleep(Duration::from_micros(200));
                        std::thread::current().name().unwrap().to_string()
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut names = HashSet::new();
        for t in tasks {
            names.insert(tokio::time::timeout(BOUND, t).await.unwrap().unwrap());
        }
        assert!(
            names.len() <= 3 && names.iter().all(|n| n.starts_with("skein-db-")),
            "{names:?}"
        );
    }

    #[tokio::test]
    async fn a_trip_that_panics_is_an_error_and_the_thread_goes_on() {
        let trips = Trips::new(1);
        let failed = tokio::time::timeout(BOUND, trips.run(|| -> u8 { panic!("a bug") }))
            .await
            .unwrap();
        assert!(
            matches!(&failed, Err(StoreError::Task(m)) if m == "a bug"),
            "{failed:?}"
        );
        let next = tokio::time::timeout(BOUND, trips.run(|| 7)).await.unwrap();
        assert_eq!(next.unwrap(), 7);
    }
}
