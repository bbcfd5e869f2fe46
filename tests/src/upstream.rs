//! A minimal OpenAI-compatible Chat Completions upstream on loopback that
//! answers at once: every `POST` gets the same short streamed answer (two
//! deltas, usage, `[DONE]`). Plain threads and `std::net`, keep-alive, one
//! thread per connection: its own cost is as small as an HTTP answer gets,
//! so that a benchmark through Skein measures Skein.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// The streamed answer.
pub const ANSWER: &str = "Hi there";

/// A running upstream.
#[derive(Debug)]
pub struct FastUpstream {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
}

impl FastUpstream {
    /// Binds a free port and serves on a background thread until the
    /// process ends.
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || serve(conn));
            }
        });
        Ok(Self { base_url })
    }
}

/// One streamed chunk of answer text.
fn delta(t: &str) -> String {
    format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n")
}

/// Reads one request (its head, then `content-length` bytes of body);
/// `None` when the connection ends first.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut length = 0usize;
    let mut line = String::new();
    // The request line, headers, an empty line.
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut request = vec![0u8; length];
    reader.read_exact(&mut request).ok()?;
    Some(request)
}

fn body() -> String {
    format!(
        "{}{}data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":40,\"completion_tokens\":2,\"total_tokens\":42}}}}\n\ndata: [DONE]\n\n",
        delta("Hi"),
        delta(" there")
    )
}

fn serve(conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let answer = body();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n",
        answer.len()
    );
    loop {
        if read_request(&mut reader).is_none() {
            return;
        }
        let reply = [head.as_bytes(), answer.as_bytes()].concat();
        if writer.write_all(&reply).is_err() {
            return;
        }
    }
}

/// An OpenAI-compatible upstream that takes its time, for streams that must
/// still be running when a test acts on them. The requested model picks
/// the pace: `slow` streams [`SLOW_DELTAS`] deltas (`"w0 "`, `"w1 "`, ...)
/// [`SLOW_PACE`] apart and ends; `stall` sends one delta (`"partial"`) and
/// then keeps the stream open (SSE comments) until the client goes away;
/// `flood` sends [`FLOOD_DELTAS`] one-word deltas as fast as it can write.
#[derive(Debug)]
pub struct PacedUpstream {
    /// `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
}

/// How many deltas `slow` sends.
pub const SLOW_DELTAS: usize = 40;
/// How many deltas `flood` sends.
pub const FLOOD_DELTAS: usize = 2_000;
/// The pause between two of them.
pub const SLOW_PACE: std::time::Duration = std::time::Duration::from_millis(50);

impl PacedUpstream {
    /// Binds a free port and serves on a background thread until the
    /// process ends (one thread per request; every answer closes its
    /// connection).
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}/v1", listener.local_addr()?);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || serve_paced(conn));
            }
        });
        Ok(Self { base_url })
    }

    /// A `skein.toml` routing `slow`, `stall` and `flood` here (and every
    /// other model to the echo model), written into `dir`; its path.
    pub fn config(&self, dir: &std::path::Path) -> String {
        let path = dir.join("skein.toml");
        let mut text = format!(
            "[limits]\nmax_messages_per_thread = 20000\n\n\
             [routing.providers.paced]\nkind = \"openai\"\nbase_url = \"{}\"\n\n\
             [routing.providers.echo]\nkind = \"echo\"\n",
            self.base_url
        );
        for model in ["slow", "stall", "flood"] {
            text.push_str(&format!(
                "\n[[routing.models]]\npattern = \"{model}\"\nprovider = \"paced\"\ncontext_window = 65536\n"
            ));
        }
        text.push_str("\n[routing.default]\nprovider = \"echo\"\ncontext_window = 8192\n");
        std::fs::write(&path, text).expect("the config file is written");
        path.display().to_string()
    }

    /// The text `slow` streams.
    pub fn slow_text() -> String {
        (0..SLOW_DELTAS).map(|i| format!("w{i} ")).collect()
    }
}

fn serve_paced(conn: TcpStream) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let request = String::from_utf8_lossy(&request);
    let stall = request.contains("\"stall\"");
    let flood = request.contains("\"flood\"");
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    if writer.write_all(head.as_bytes()).is_err() {
        return;
    }
    if stall {
        if writer.write_all(delta("partial").as_bytes()).is_err() {
            return;
        }
        // Until Skein hangs up (a cancel, or its process died).
        while writer.write_all(b": waiting\n\n").is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        return;
    }
    if flood {
        let all: String = (0..FLOOD_DELTAS)
            .map(|i| delta(&format!("w{i} ")))
            .collect();
        if writer.write_all(all.as_bytes()).is_err() {
            return;
        }
    } else {
        for i in 0..SLOW_DELTAS {
            if writer
                .write_all(delta(&format!("w{i} ")).as_bytes())
                .is_err()
            {
                return;
            }
            std::thread::sleep(SLOW_PACE);
        }
    }
    let _ = writer.write_all(
        b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":40,\"total_tokens\":50}}\n\ndata: [DONE]\n\n",
    );
}
