//! The request id of the work being done, for logs: set by the API for the
//! whole handling of a request and carried into the tasks a request starts
//! (a model response's generation, its recorder, its lease renewal), so
//! that every log line of that work names the request that caused it.

use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id of the current task, if it runs for a request.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `f` as part of request `id`.
pub fn scope<F: Future>(id: String, f: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, f)
}

/// Runs the synchronous `f` as part of request `id`.
pub fn sync_scope<R>(id: String, f: impl FnOnce() -> R) -> R {
    REQUEST_ID.sync_scope(id, f)
}

/// `f`, to be spawned, carrying the current request id (if any) with it.
pub fn inherit<F: Future>(f: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(current().unwrap_or_default(), f)
}
