//! Logging: env_logger, with the errors a client can cause in the HTTP
//! layer logged as warnings.
//!
//! actix-http logs a malformed request or an oversized head at ERROR
//! (`stream error: ...`, target `actix_http::h1::dispatcher`), and
//! actix-server logs accept failures at ERROR too. Neither is a fault of the
//! server, and any client could fill the error log with them: records of
//! those targets at ERROR are re-emitted at WARN.

use log::{Level, Log, Metadata, Record};

/// Targets whose ERROR records are demoted to WARN.
const DEMOTED_TARGETS: [&str; 2] = ["actix_http::h1", "actix_server"];

/// Installs the logger with `filter` (env_logger syntax), writing text
/// lines, or one JSON object per line with `json`.
pub fn init(filter: &str, json: bool) -> Result<(), log::SetLoggerError> {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(filter);
    if json {
        builder.format(|buf, record| {
            use std::io::Write;
            writeln!(buf, "{}", json_line(record, chrono::Utc::now()))
        });
    }
    let inner = builder.build();
    let max = inner.filter();
    log::set_boxed_logger(Box::new(Demoting { inner }))?;
    log::set_max_level(max);
    Ok(())
}

/// One record as one JSON object: `time` (RFC 3339, UTC, milliseconds),
/// `level`, `target`, `message`, `request_id` when the record was made
/// while serving a request (or work a request started), and the record's
/// key-values (the access log's method, route, status, latency_ms,
/// organization).
fn json_line(record: &Record<'_>, now: chrono::DateTime<chrono::Utc>) -> String {
    use log::kv::{Error, Key, Value, VisitSource};
    struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);
    impl<'kvs> VisitSource<'kvs> for Fields<'_> {
        fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), Error> {
            let v = if let Some(n) = value.to_u64() {
                serde_json::Value::from(n)
            } else if let Some(n) = value.to_i64() {
                serde_json::Value::from(n)
            } else if let Some(f) = value.to_f64() {
                serde_json::Value::from(f)
            } else if let Some(b) = value.to_bool() {
                serde_json::Value::from(b)
            } else {
                serde_json::Value::from(value.to_string())
            };
            self.0.insert(key.as_str().to_string(), v);
            Ok(())
        }
    }
    let mut line = serde_json::Map::new();
    line.insert(
        "time".into(),
        now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into(),
    );
    line.insert("level".into(), record.level().as_str().into());
    line.insert("target".into(), record.target().into());
    line.insert("message".into(), record.args().to_string().into());
    if let Some(id) = skein_api::request_id::known() {
        line.insert("request_id".into(), id.into());
    }
    // A record's own fields win (the access log names its request id).
    let _ = record.key_values().visit(&mut Fields(&mut line));
    serde_json::Value::Object(line).to_string()
}

/// env_logger behind the demotion of [`DEMOTED_TARGETS`].
struct Demoting<L> {
    inner: L,
}

fn demoted(metadata: &Metadata<'_>) -> bool {
    metadata.level() == Level::Error
        && DEMOTED_TARGETS
            .iter()
            .any(|t| metadata.target().starts_with(t))
}

impl<L: Log> Log for Demoting<L> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        if demoted(metadata) {
            let warn = Metadata::builder()
                .level(Level::Warn)
                .target(metadata.target())
                .build();
            self.inner.enabled(&warn)
        } else {
            self.inner.enabled(metadata)
        }
    }

    fn log(&self, record: &Record<'_>) {
        if demoted(record.metadata()) {
            self.inner.log(
                &Record::builder()
                    .args(*record.args())
                    .level(Level::Warn)
                    .target(record.target())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
        } else {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records what it is given, for any level.
    #[derive(Default)]
    struct Capture(Mutex<Vec<(Level, String, String)>>);

    impl Log for Capture {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            metadata.level() <= Level::Warn
        }
        fn log(&self, record: &Record<'_>) {
            self.0.lock().unwrap().push((
                record.level(),
                record.target().to_string(),
                record.args().to_string(),
            ));
        }
        fn flush(&self) {}
    }

    fn log_at(logger: &impl Log, level: Level, target: &str, text: &str) {
        logger.log(
            &Record::builder()
                .args(format_args!("{text}"))
                .level(level)
                .target(target)
                .build(),
        );
    }

    #[test]
    fn a_json_line_holds_the_record_and_its_fields() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T10:00:00.5Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let kvs = [
            ("status", log::kv::Value::from(201u64)),
            ("route", "/v1/threads".into()),
        ];
        let record = Record::builder()
            .args(format_args!("said \"hi\"\nthere"))
            .level(Level::Info)
            .target("skein::access")
            .key_values(&kvs)
            .build();
        let v: serde_json::Value = serde_json::from_str(&json_line(&record, at)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"time": "2026-11-30T10:00:00.500Z", "level": "INFO",
                               "target": "skein::access", "message": "said \"hi\"\nthere",
                               "status": 201, "route": "/v1/threads"})
        );
    }

    #[test]
    fn client_caused_errors_of_the_http_layer_become_warnings() {
        let logger = Demoting {
            inner: Capture::default(),
        };
        log_at(
            &logger,
            Level::Error,
            "actix_http::h1::dispatcher",
            "stream error: x",
        );
        log_at(
            &logger,
            Level::Error,
            "actix_server::accept",
            "accept failed",
        );
        log_at(&logger, Level::Error, "skein_api::error", "request failed");
        log_at(&logger, Level::Error, "actix_http::h2", "other");
        let seen = logger.inner.0.lock().unwrap().clone();
        let levels: Vec<(Level, &str)> = seen.iter().map(|(l, t, _)| (*l, t.as_str())).collect();
        assert_eq!(
            levels,
            [
                (Level::Warn, "actix_http::h1::dispatcher"),
                (Level::Warn, "actix_server::accept"),
                (Level::Error, "skein_api::error"),
                (Level::Error, "actix_http::h2"),
            ]
        );
        assert_eq!(seen[0].2, "stream error: x");
        let error = Metadata::builder()
            .level(Level::Error)
            .target("actix_http::h1::dispatcher")
            .build();
        assert!(logger.enabled(&error));
    }

    #[test]
    fn the_filter_still_applies() {
        let quiet = Demoting {
            inner: env_logger::Builder::new().parse_filters("error").build(),
        };
        let error = Metadata::builder()
            .level(Level::Error)
            .target("actix_http::h1::dispatcher")
            .build();
        assert!(!quiet.enabled(&error), "a demoted record is a warning");
    }
}
