//! The HTTP server: actix-server accepts the connections, actix-http's
//! HTTP/1.1 dispatcher serves the app on them, and [`EdgeIo`] sits between
//! the socket and the dispatcher.
//!
//! Why not `actix_web::HttpServer`: a few requests are refused by the
//! dispatcher itself, before any middleware or handler (a malformed request
//! line or head: 400; a head over its limits, 96 headers or 128 KiB: 431; a
//! client that does not send its head within the client request timeout:
//! 408). It answers them with an empty body and no hook to change that.
//! [`EdgeIo`] recognises such an answer on its way to the socket and puts
//! the contract's JSON error envelope in its place (see [`rewrite`]).
//! Everything else is what `HttpServer::listen` sets up: the same builders,
//! timeouts, keep-alive and graceful shutdown.

use actix_http::body::MessageBody;
use actix_http::{HttpService, KeepAlive, Request};
use actix_service::{
    fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt as _,
};
use actix_web::dev::{AppConfig, ServiceResponse};
use skein_api::ApiError;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How the server listens.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Worker threads (default: one per core).
    pub workers: Option<usize>,
    /// How long a client has to send its request head (else 408).
    pub client_request_timeout: Duration,
    /// Seconds a graceful stop waits for requests in flight.
    pub shutdown_timeout_secs: u64,
}

/// Idle keep-alive connections are closed after this long
/// (`HttpServer`'s default).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// How long a closing connection may linger (`HttpServer`'s default).
const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A server on `listener`, serving what `app` builds (once per worker),
/// with OS signals left to the caller. Stop it through its handle.
pub fn server<F, I, S, B>(
    listener: std::net::TcpListener,
    settings: HttpSettings,
    app: F,
) -> io::Result<actix_server::Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    let local_addr = listener.local_addr()?;
    let mut builder = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(settings.shutdown_timeout_secs);
    if let Some(workers) = settings.workers {
        builder = builder.workers(workers);
    }
    let shutdown = builder.graceful_shutdown_signal();
    let builder = builder.listen("skein-http", listener, move || {
        let shutdown = shutdown.clone();
        let dispatcher = HttpService::build()
            .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
            .client_request_timeout(settings.client_request_timeout)
            .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
            .local_addr(local_addr)
            // Idle keep-alive connections close at once on a graceful stop
            // (the hook `HttpServer` uses too; hidden in actix-http's docs).
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            // `AppConfig` only gives the host and address of URLs built from
            // a request without a `Host` header; Skein builds none.
            .h1(map_config(
                app()
                    .into_factory()
                    .map_err(|e: actix_web::Error| e.error_response()),
                |()| AppConfig::default(),
            ));
        fn_service(|io: TcpStream| async move {
            // Stream frames go out as they are written: without this,
            // Nagle's algorithm holds a small frame until the client's
            // (delayed, up to 40 ms) ACK of the previous one.
            if let Err(e) = io.set_nodelay(true) {
                log::debug!("TCP_NODELAY not set: {e}");
            }
            let peer = io.peer_addr().ok();
            Ok::<_, actix_http::error::DispatchError>((EdgeIo::new(io, peer), peer))
        })
        .and_then(dispatcher)
    })?;
    Ok(builder.run())
}

/// A connection's socket as the dispatcher sees it: reads pass through;
/// a write that ends in an error answer of the dispatcher (status 400, 408
/// or 431 with `content-length: 0`) sends the JSON envelope instead.
pub struct EdgeIo<T> {
    inner: T,
    peer: Option<SocketAddr>,
    /// The answer being sent in place of the dispatcher's: its bytes, how
    /// many have been written, and how many bytes of the dispatcher's own
    /// answer it stands for.
    replacing: Option<Replacement>,
}

struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    replaces: usize,
}

impl<T> EdgeIo<T> {
    /// Wraps a connection from `peer`.
    pub fn new(inner: T, peer: Option<SocketAddr>) -> Self {
        Self {
            inner,
            peer,
            replacing: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for EdgeIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for EdgeIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.replacing.is_none() {
            match error_head_at(buf) {
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
                // What comes before (a pipelined answer) goes out first.
                Some(start) if start > 0 => {
                    return Pin::new(&mut this.inner).poll_write(cx, &buf[..start]);
                }
                Some(_) => match rewrite(buf) {
                    Some((bytes, status, trace_id)) => {
                        log::info!(
                            "{} answered {status} by the HTTP layer rid={trace_id}",
                            this.peer
                                .map_or_else(|| "-".to_string(), |p| p.ip().to_string())
                        );
                        this.replacing = Some(Replacement {
                            bytes,
                            written: 0,
                            replaces: buf.len(),
                        });
                    }
                    None => return Pin::new(&mut this.inner).poll_write(cx, buf),
                },
            }
        }
        // The dispatcher sees its answer written only once the whole
        // replacement is: it closes the connection right after.
        let Some(r) = this.replacing.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while r.written < r.bytes.len() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &r.bytes[r.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            r.written += n;
        }
        let replaced = r.replaces;
        this.replacing = None;
        Poll::Ready(Ok(replaced))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The dispatcher's error answers are short; only the end of a write is
/// searched for one.
const ERROR_HEAD_MAX: usize = 1024;

/// Where an error answer of the dispatcher starts in `buf`, if `buf` ends
/// with one: a complete head `HTTP/1.x 400|408|431 ...` with
/// `content-length: 0` and nothing after it. The app never answers these
/// statuses without a JSON body, and the dispatcher closes the connection
/// after such an answer, so it is always the last thing written.
fn error_head_at(buf: &[u8]) -> Option<usize> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = buf.len().saturating_sub(ERROR_HEAD_MAX);
    let start = from + rfind(&buf[from..], b"HTTP/1.")?;
    parse_error_head(&buf[start..]).map(|_| start)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// The status of an error head of the dispatcher, and its header lines.
fn parse_error_head(head: &[u8]) -> Option<(u16, Vec<&str>)> {
    let text = std::str::from_utf8(head).ok()?.strip_suffix("\r\n\r\n")?;
    if text.contains("\r\n\r\n") {
        return None;
    }
    let mut lines = text.split("\r\n");
    let mut status_line = lines.next()?.splitn(3, ' ');
    if !matches!(status_line.next(), Some("HTTP/1.1" | "HTTP/1.0")) {
        return None;
    }
    let status: u16 = status_line.next()?.parse().ok()?;
    ApiError::from_http_layer_status(status)?;
    let headers: Vec<&str> = lines.collect();
    let empty = headers.iter().any(|h| {
        h.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("content-length") && value.trim() == "0"
        })
    });
    empty.then_some((status, headers))
}

/// The JSON answer that replaces the dispatcher's error answer `head`:
/// same status line and headers, with the envelope as body, a fresh request
/// id and `connection: close`. Also returns the status and the id.
fn rewrite(head: &[u8]) -> Option<(Vec<u8>, u16, String)> {
    let (status, headers) = parse_error_head(head)?;
    let error = ApiError::from_http_layer_status(status)?;
    let status_line = std::str::from_utf8(head).ok()?.split("\r\n").next()?;
    let trace_id = skein_api::request_id::current();
    let body = serde_json::to_vec(&error.envelope(&error.public_as(trace_id.clone()))).ok()?;
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(status_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in headers {
        let name = header.split(':').next().unwrap_or("").trim();
        let replaced = [
            "content-length",
            "content-type",
            "connection",
            "x-request-id",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n));
        if !replaced {
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    let extra = format!(
        "content-type: application/json\r\ncontent-length: {}\r\n{}: {trace_id}\r\nconnection: close\r\n\r\n",
        body.len(),
        skein_api::request_id::HEADER,
    );
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(&body);
    Some((out, status, trace_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use tokio::io::AsyncWriteExt;

    const HEAD_431: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\ndate: Mon, 01 Dec 2025 10:00:00 GMT\r\n\r\n";

    fn split(answer: &[u8]) -> (String, Value) {
        let text = std::str::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn an_error_head_is_found_only_at_the_end_of_a_write() {
        assert_eq!(error_head_at(HEAD_431), Some(0));
        let mut pipelined = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        let start = pipelined.len();
        pipelined.extend_from_slice(HEAD_431);
        assert_eq!(error_head_at(&pipelined), Some(start));
        // Our own 400s have a body; other statuses and bodies pass.
        for passing in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 17\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"data: HTTP/1.1 400 x\r\n\r\n",
        ] {
            assert_eq!(
                error_head_at(passing),
                None,
                "{:?}",
                String::from_utf8_lossy(passing)
            );
        }
    }

    #[test]
    fn the_rewrite_keeps_the_status_and_sends_the_envelope() {
        let (bytes, status, trace_id) = rewrite(HEAD_431).unwrap();
        assert_eq!(status, 431);
        let (head, body) = split(&bytes);
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("\r\ndate: Mon, 01 Dec 2025 10:00:00 GMT"));
        assert!(head.contains(&format!("\r\nx-request-id: {trace_id}")));
        assert_eq!(head.matches("connection: close").count(), 1);
        let length = format!("content-length: {}", bytes.len() - head.len() - 4);
        assert!(head.contains(&length), "{head}");
        assert_eq!(body["error"]["code"], "REQUEST_HEADER_FIELDS_TOO_LARGE");
        assert_eq!(body["error"]["status"], 431);
        assert_eq!(body["error"]["type"], "client_error");
        assert_eq!(body["error"]["trace_id"], trace_id.as_str());
        assert_eq!(body["success"], false);
    }

    /// A socket that takes at most `chunk` bytes per write.
    struct Trickle {
        out: Vec<u8>,
        chunk: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let n = buf.len().min(this.chunk);
            this.out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_pipelined_answer_goes_out_unchanged_before_the_replacement() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        let mut written = ok.to_vec();
        written.extend_from_slice(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n");
        let mut io = EdgeIo::new(
            Trickle {
                out: Vec::new(),
                chunk: 7,
            },
            None,
        );
        io.write_all(&written).await.unwrap();
        let out = io.inner.out;
        assert!(out.starts_with(ok));
        let (head, body) = split(&out[ok.len()..]);
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert_eq!(body["error"]["code"], "BAD_REQUEST");
        // Normal traffic is untouched.
        let mut io = EdgeIo::new(
            Trickle {
                out: Vec::new(),
                chunk: 3,
            },
            None,
        );
        io.write_all(ok).await.unwrap();
        assert_eq!(io.inner.out, ok);
    }
}
