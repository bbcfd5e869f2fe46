//! A few process counters in Prometheus text format.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request counters by status class (1xx..5xx).
#[derive(Debug, Default)]
pub struct Metrics {
    by_class: [AtomicU64; 5],
}

impl Metrics {
    /// Counts one answered request.
    pub fn record(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
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
