//! A few process counters in Prometheus text format.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request counters by status class (1xx..5xx) and what the retention
/// sweeper purged.
#[derive(Debug, Default)]
pub struct Metrics {
    by_class: [AtomicU64; 5],
    purged_threads: AtomicU64,
    purged_messages: AtomicU64,
    purged_responses: AtomicU64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds what one sweep purged: threads, messages, responses.
    pub fn record_purged(&self, threads: u64, messages: u64, responses: u64) {
        self.purged_threads.fetch_add(threads, Ordering::Relaxed);
        self.purged_messages.fetch_add(messages, Ordering::Relaxed);
        self.purged_responses
            .fetch_add(responses, Ordering::Relaxed);
    }

    /// The counters in Prometheus text format.
    pub fn render(&self, backend: &str) -> String {
        let mut out = String::new();
        out.push_str("# HELP skein_http_requests_total HTTP requests answered, by status class.\n");
        out.push_str("# TYPE skein_http_requests_total counter\n");
        for (i, counter) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "skein_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                counter.load(Ordering::Relaxed)
            );
        }
        for (name, what, counter) in [
            ("threads", "threads", &self.purged_threads),
            (
                "messages",
                "messages of purged threads",
                &self.purged_messages,
            ),
            ("responses", "stored responses", &self.purged_responses),
        ] {
            let _ = writeln!(
                out,
                "# HELP skein_purged_{name}_total {} permanently deleted by the retention sweeper.",
                capitalized(what)
            );
            let _ = writeln!(out, "# TYPE skein_purged_{name}_total counter");
            let _ = writeln!(
                out,
                "skein_purged_{name}_total {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP skein_info Build and configuration information.\n");
        out.push_str("# TYPE skein_info gauge\n");
        let _ = writeln!(
            out,
            "skein_info{{version=\"{}\",backend=\"{backend}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Middleware counting every answer.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        m.record(res.status().as_u16());
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_counters_add_up_and_render() {
        let m = Metrics::default();
        m.record_purged(2, 5, 7);
        m.record_purged(1, 0, 3);
        let text = m.render("sqlite");
        assert!(text.contains("skein_purged_threads_total 3\n"));
        assert!(text.contains("skein_purged_messages_total 5\n"));
        assert!(text.contains("skein_purged_responses_total 10\n"));
        assert!(text.contains("# TYPE skein_purged_threads_total counter\n"));
    }
}
