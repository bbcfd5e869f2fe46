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

fn body() -> String {
    let delta = |t: &str| {
        format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{t}\"}}}}]}}\n\n")
    };
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
        let mut length = 0usize;
        let mut line = String::new();
        // The request head: the request line, headers, an empty line.
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
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
        if reader.read_exact(&mut request).is_err() {
            return;
        }
        let reply = [head.as_bytes(), answer.as_bytes()].concat();
        if writer.write_all(&reply).is_err() {
            return;
        }
    }
}
