//! Errors raised below the handlers, against the real binary over raw TCP:
//! a malformed request, a head over the limits, a slow client. They answer
//! in the JSON error envelope (with the request id in `X-Request-Id`), the
//! app's own answers pass unchanged, and nothing is logged at ERROR.

use serde_json::Value;
use skein_persistence::testing::TestDb;
use skein_persistence::Backend;
use skein_tests::Server;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

skein_persistence::on_both_backends!(
    errors_below_the_handlers_answer_in_the_envelope_and_are_not_logged_as_errors,
);

/// The head size at which actix-http stops reading a request head (431).
const HEAD_LIMIT: usize = 131_072;
/// Every read and write on a raw connection gives up after this.
const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// One HTTP answer read off the wire.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The contract's envelope with `status` and `code`, its `trace_id`
    /// also in `X-Request-Id`; returns the trace id.
    fn assert_envelope(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status);
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(
            self.header("content-length"),
            Some(self.body.len().to_string().as_str())
        );
        let body = self.json();
        let error = &body["error"];
        assert_eq!(body["success"], false, "{body}");
        assert_eq!(error["code"], code, "{body}");
        assert_eq!(error["status"], status, "{body}");
        assert_eq!(error["type"], "client_error", "{body}");
        for field in ["message", "system_message", "timestamp"] {
            assert!(error[field].is_string(), "{field}: {body}");
        }
        assert!(error["details"].is_object(), "{body}");
        let trace_id = error["trace_id"].as_str().unwrap().to_string();
        assert!(trace_id.starts_with("req_"), "{body}");
        assert_eq!(self.header("x-request-id"), Some(trace_id.as_str()));
        trace_id
    }
}

/// A connection with read and write timeouts.
fn connect(server: &Server) -> TcpStream {
    let addr = server.base_url.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Sends `request` and reads until the server closes the connection.
fn exchange(server: &Server, request: &[u8]) -> Vec<Answer> {
    let mut stream = connect(server);
    stream.write_all(request).unwrap();
    read_to_close(&mut stream)
}

fn read_to_close(stream: &mut TcpStream) -> Vec<Answer> {
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .expect("the server answers and closes within the read timeout");
    parse_answers(&bytes)
}

/// Splits the bytes of a connection into answers (each with a
/// `content-length`).
fn parse_answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let body_start = end + 4;
        answers.push(Answer {
            status: status.parse().unwrap(),
            headers,
            body: bytes[body_start..body_start + length].to_vec(),
        });
        bytes = &bytes[body_start + length..];
    }
    answers
}

fn errors_below_the_handlers_answer_in_the_envelope_and_are_not_logged_as_errors(backend: Backend) {
    let db = TestDb::new(backend);
    let dir = tempfile::tempdir().unwrap();
    let url = super::backend_url(&db, dir.path());
    let server = Server::start_with(
        &url,
        dir.path(),
        &[("SKEIN_CLIENT_REQUEST_TIMEOUT_MS", "1500")],
    );
    let key = server.bootstrap_key.clone().unwrap();
    let mut trace_ids = Vec::new();

    // A malformed request line, and a bad version: 400.
    for request in [&b"GARBAGE\r\n\r\n"[..], b"GET /healthz HTTP/9.9\r\n\r\n"] {
        let answers = exchange(&server, request);
        assert_eq!(answers.len(), 1);
        trace_ids.push(answers[0].assert_envelope(400, "BAD_REQUEST"));
    }

    // Too many headers: 431.
    let mut many = b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-Filler-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let answers = exchange(&server, &many);
    trace_ids.push(answers[0].assert_envelope(431, "REQUEST_HEADER_FIELDS_TOO_LARGE"));

    // A URL too long: the head reaches the limit before it ends. Exactly
    // the limit is sent, so the server has read everything when it closes.
    let mut long = b"GET /v1/threads?after=".to_vec();
    long.resize(HEAD_LIMIT, b'a');
    let answers = exchange(&server, &long);
    trace_ids.push(answers[0].assert_envelope(431, "REQUEST_HEADER_FIELDS_TOO_LARGE"));

    // A slow client: half a head, then nothing; and a silent one. 408
    // after the configured 1.5 s (actix-http's clock may make it up to
    // 0.5 s less), not the default 5 s.
    for request in [&b"GET /healthz HTTP/1.1\r\nHost: x\r\n"[..], b""] {
        let started = Instant::now();
        let answers = exchange(&server, request);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
        trace_ids.push(answers[0].assert_envelope(408, "REQUEST_TIMEOUT"));
    }

    // A good request, then garbage on the same connection: the first
    // answer is untouched, the second is the envelope.
    let answers = exchange(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n",
    );
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0].json()["status"], "ok");
    trace_ids.push(answers[1].assert_envelope(400, "BAD_REQUEST"));

    // The app's own 400 keeps its code and body.
    let request = format!(
        "POST /v1/threads HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: 1\r\nConnection: close\r\n\r\n{{"
    );
    let answers = exchange(&server, request.as_bytes());
    answers[0].assert_envelope(400, "INVALID_JSON");

    // Keep-alive still works: two requests on one connection.
    let mut stream = connect(&server);
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    let n = stream.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let answers = read_to_close(&mut stream);
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0].json()["status"], "ready");

    assert!(server.terminate(), "SIGTERM ends the server cleanly");
    let logs =
        std::fs::read_to_string(dir.path().join(format!("skein-{}.log", std::process::id())))
            .unwrap();
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "nothing at ERROR: {errors:#?}");
    assert!(
        logs.lines().any(|l| l.contains("WARN")
            && l.contains("actix_http::h1")
            && l.contains("stream error")),
        "the HTTP layer's complaints are warnings:\n{logs}"
    );
    for id in &trace_ids {
        assert!(logs.contains(id.as_str()), "{id} is logged:\n{logs}");
    }
    // The access log still names the client.
    assert!(
        logs.contains("127.0.0.1 \"GET /readyz HTTP/1.1\" 200"),
        "{logs}"
    );
}
