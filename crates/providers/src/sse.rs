//! A small incremental parser for `text/event-stream` bodies.
//!
//! It follows the event-stream format: lines end with `\n` (an optional `\r` before it is
//! dropped), a blank line dispatches the event, `data:` lines of one event are joined with `\n`,
//! comment lines (`:`) and other fields (`event:`, `id:`, `retry:`) are ignored. Input may be cut
//! anywhere, including inside a line or a UTF-8 character.

/// The body is not valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event stream is not valid UTF-8")]
pub(crate) struct InvalidUtf8;

/// Incremental event-stream parser yielding the `data` of each event.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes received but not yet part of a complete line.
    buf: Vec<u8>,
    /// How much of `buf` is known to contain no line end.
    scanned: usize,
    /// The data lines of the event being read, if any.
    data: Option<String>,
}

impl SseParser {
    /// Feeds the next piece of the body; returns the data of the events it completed.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, InvalidUtf8> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(offset) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
            let end = self.scanned + offset;
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            self.scanned = 0;
            self.line(&line[..end], &mut events)?;
        }
        self.scanned = self.buf.len();
        Ok(events)
    }

    /// Ends the body: an unterminated last line and a pending event are taken as complete.
    pub(crate) fn finish(&mut self) -> Result<Vec<String>, InvalidUtf8> {
        let mut events = Vec::new();
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.scanned = 0;
            self.line(&line, &mut events)?;
        }
        if let Some(data) = self.data.take() {
            events.push(data);
        }
        Ok(events)
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<String>) -> Result<(), InvalidUtf8> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = std::str::from_utf8(line).map_err(|_| InvalidUtf8)?;
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                events.push(data);
            }
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(body: &[u8], piece: usize) -> Vec<String> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for chunk in body.chunks(piece) {
            events.extend(parser.push(chunk).unwrap());
        }
        events.extend(parser.finish().unwrap());
        events
    }

    #[test]
    fn events_are_the_same_however_the_body_is_cut() {
        let body = "data: {\"a\":\"héllo\"}\n\n: keep-alive\n\nevent: chunk\ndata: two\r\n\r\ndata: [DONE]\n\n";
        let expected = vec!["{\"a\":\"héllo\"}", "two", "[DONE]"];
        for piece in 1..=body.len() {
            assert_eq!(
                parse_in_pieces(body.as_bytes(), piece),
                expected,
                "piece {piece}"
            );
        }
    }

    #[test]
    fn several_events_in_one_read_are_all_returned() {
        let mut parser = SseParser::default();
        let events = parser.push(b"data: 1\n\ndata: 2\n\ndata: 3\n").unwrap();
        assert_eq!(events, vec!["1", "2"]);
        assert_eq!(parser.push(b"\n").unwrap(), vec!["3"]);
    }

    #[test]
    fn data_lines_of_one_event_are_joined_with_newlines() {
        assert_eq!(parse_in_pieces(b"data: a\ndata:b\n\n", 64), vec!["a\nb"]);
    }

    #[test]
    fn an_unterminated_last_event_is_returned_at_the_end() {
        assert_eq!(parse_in_pieces(b"data: [DONE]", 64), vec!["[DONE]"]);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut parser = SseParser::default();
        assert_eq!(parser.push(b"data: \xff\n"), Err(InvalidUtf8));
    }
}
