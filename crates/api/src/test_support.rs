//! Helpers for the unit tests of this crate.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

/// A header map with `pairs`, repeated names kept.
pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}
