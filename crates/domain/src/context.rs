//! Building a model's context: instructions and system inputs, then as much
//! stored history as fits (newest turns win), then the new inputs, all
//! measured in tokens against the model's context window.

use crate::{Message, MessageRole};

/// Tokens counted per message for the chat format's framing.
pub const MESSAGE_OVERHEAD_TOKENS: u32 = 4;

/// Who a context item speaks as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextRole {
    /// Instructions and system inputs.
    System,
    /// Developer inputs.
    Developer,
    /// The user.
    User,
    /// The model.
    Assistant,
}

impl From<MessageRole> for ContextRole {
    fn from(r: MessageRole) -> Self {
        match r {
            MessageRole::User => ContextRole::User,
            MessageRole::Assistant => ContextRole::Assistant,
        }
    }
}

/// One message of the context sent to the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextItem {
    /// Role.
    pub role: ContextRole,
    /// Text.
    pub content: String,
    /// Token count of `content`.
    pub tokens: u32,
    /// A conversation item that is not a message (a function call, its
    /// output, ...), verbatim; `content` is then its JSON text.
    pub item: Option<serde_json::Value>,
    /// The stored message (or item) it was read from, for history.
    pub id: Option<String>,
}

impl ContextItem {
    /// A message of the context.
    pub fn text(role: ContextRole, content: String, tokens: u32) -> Self {
        Self {
            role,
            content,
            tokens,
            item: None,
            id: None,
        }
    }
}

impl ContextItem {
    fn cost(&self) -> u32 {
        self.tokens.saturating_add(MESSAGE_OVERHEAD_TOKENS)
    }
}

/// The fixed part of a request does not fit in the window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the input needs {needed} tokens but the model's context window is {window}")]
pub struct ContextTooLong {
    /// Tokens the instructions, system and new inputs (and the reserved
    /// output) need.
    pub needed: u32,
    /// The window.
    pub window: u32,
}

/// How much of a thread's stored history a turn puts in front of its
/// inputs (always cut to the window as well).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextMode {
    /// As much history as the window holds, newest first.
    #[default]
    Full,
    /// No stored history.
    Off,
    /// The last [`RECENT_MESSAGES`] messages.
    Recent,
    /// The first [`SMART_FIRST`] and the last [`SMART_LAST`] messages.
    Smart,
}

/// Messages of [`ContextMode::Recent`].
pub const RECENT_MESSAGES: u32 = 10;
/// Oldest messages of [`ContextMode::Smart`].
pub const SMART_FIRST: u32 = 3;
/// Newest messages of [`ContextMode::Smart`].
pub const SMART_LAST: u32 = 7;

impl ContextMode {
    /// `full`, `off`, `recent` (alias `saver`), `smart` (alias `auto`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "off" => Some(Self::Off),
            "recent" | "saver" => Some(Self::Recent),
            "smart" | "auto" => Some(Self::Smart),
            _ => None,
        }
    }
}

/// Collects history newest-first until the budget is spent.
#[derive(Debug)]
pub struct ContextBuilder {
    preamble: Vec<ContextItem>,
    new_inputs: Vec<ContextItem>,
    history_newest_first: Vec<ContextItem>,
    left: u32,
    /// What the history taken costs.
    spent: u64,
    full: bool,
}

impl ContextBuilder {
    /// Starts a context for a model with `window` tokens, keeping
    /// `reserved_output` tokens free for the answer. The preamble
    /// (instructions, system inputs) and the new inputs are never dropped:
    /// if they alone do not fit, the request cannot be served.
    pub fn new(
        window: u32,
        reserved_output: u32,
        preamble: Vec<ContextItem>,
        new_inputs: Vec<ContextItem>,
    ) -> Result<Self, ContextTooLong> {
        let fixed = preamble
            .iter()
            .chain(new_inputs.iter())
            .map(ContextItem::cost)
            .fold(reserved_output, u32::saturating_add);
        if fixed > window {
            return Err(ContextTooLong {
                needed: fixed,
                window,
            });
        }
        Ok(Self {
            preamble,
            new_inputs,
            history_newest_first: Vec::new(),
            left: window - fixed,
            spent: 0,
            full: false,
        })
    }

    /// Offers the next older stored turn. Returns false once the budget is
    /// spent: the turn is not taken and no older turn will be (the history
    /// stays contiguous), so the caller can stop reading.
    pub fn offer(&mut self, message: &Message) -> bool {
        self.offer_item(ContextItem {
            role: message.role.into(),
            content: message.content.clone(),
            tokens: message.token_count,
            item: message.item.clone(),
            id: Some(message.id.to_string()),
        })
    }

    /// Like [`ContextBuilder::offer`] for a turn that is not a stored
    /// message (a chained response's inputs and output).
    pub fn offer_item(&mut self, item: ContextItem) -> bool {
        if self.full {
            return false;
        }
        if item.cost() > self.left {
            self.full = true;
            return false;
        }
        self.left -= item.cost();
        self.spent += u64::from(item.cost());
        self.history_newest_first.push(item);
        true
    }

    /// About how many more stored turns the window can take, judged by the
    /// average cost of those taken so far, with an eighth more and one to
    /// spare (a reader that fetches this many sees where the window fills
    /// without another read); 0 once it is full. Before any turn is taken
    /// the estimate assumes turns of no text.
    pub fn room_estimate(&self) -> u32 {
        if self.full {
            return 0;
        }
        let taken = self.history_newest_first.len() as u64;
        let average = if taken == 0 {
            u64::from(MESSAGE_OVERHEAD_TOKENS)
        } else {
            self.spent.div_ceil(taken)
        }
        .max(1);
        let fits = u64::from(self.left) / average;
        u32::try_from(fits + fits / 8 + 1).unwrap_or(u32::MAX)
    }

    /// How many stored turns were taken.
    pub fn history_len(&self) -> usize {
        self.history_newest_first.len()
    }

    /// The stored turns taken, newest first.
    pub fn history(&self) -> &[ContextItem] {
        &self.history_newest_first
    }

    /// How many items [`ContextBuilder::finish`] puts first (the preamble),
    /// then from history, then as new inputs.
    pub fn parts(&self) -> [usize; 3] {
        [
            self.preamble.len(),
            self.history_newest_first.len(),
            self.new_inputs.len(),
        ]
    }

    /// The context in order: preamble, history oldest first, new inputs.
    /// Whether an offered item was refused: the history was cut to the
    /// window.
    pub fn truncated(&self) -> bool {
        self.full
    }

    /// The context: preamble, the history taken (oldest first), the new
    /// inputs.
    pub fn finish(self) -> Vec<ContextItem> {
        let mut out = self.preamble;
        out.extend(self.history_newest_first.into_iter().rev());
        out.extend(self.new_inputs);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock, NewMessage, ThreadId};

    fn item(role: ContextRole, tokens: u32) -> ContextItem {
        ContextItem::text(role, format!("{tokens}"), tokens)
    }

    fn stored(content: &str, tokens: u32) -> Message {
        NewMessage::text(MessageRole::User, content.into(), tokens).into_message(
            ThreadId::generate(),
            1,
            clock::now(),
            crate::MessageId::generate,
        )
    }

    #[test]
    fn history_fills_newest_first_and_stops_at_the_first_turn_that_does_not_fit() {
        // Window 100: preamble 10+4, new input 10+4, so 72 left for history.
        let mut b = ContextBuilder::new(
            100,
            0,
            vec![item(ContextRole::System, 10)],
            vec![item(ContextRole::User, 10)],
        )
        .unwrap();
        assert!(b.offer(&stored("newest", 30))); // 34, 38 left
        assert!(b.offer(&stored("older", 30))); // 34, 4 left
        assert!(!b.offer(&stored("too big", 1))); // 5 > 4
        assert!(!b.offer(&stored("tiny", 0)), "no skipping to older turns");
        assert_eq!(b.history_len(), 2);
        let ctx = b.finish();
        let contents: Vec<_> = ctx.iter().map(|c| c.content.as_str()).collect();
        assert_eq!(contents, ["10", "older", "newest", "10"]);
    }

    #[test]
    fn the_room_estimate_follows_the_turns_taken_and_is_zero_once_full() {
        // 100 tokens for history.
        let mut b = ContextBuilder::new(100, 0, vec![], vec![]).unwrap();
        // Costs 10, 90 left: 9 more of the same size fit, an eighth more
        // (1) and one to spare.
        assert!(b.offer(&stored("a", 6)));
        assert_eq!(b.room_estimate(), 11);
        assert!(b.offer(&stored("b", 26))); // costs 30, 60 left, average 20
        assert_eq!(b.room_estimate(), 4);
        assert!(!b.offer(&stored("c", 60)));
        assert_eq!(b.room_estimate(), 0);
    }

    #[test]
    fn inputs_that_alone_do_not_fit_are_an_error() {
        let err =
            ContextBuilder::new(20, 0, vec![], vec![item(ContextRole::User, 17)]).unwrap_err();
        assert_eq!(
            err,
            ContextTooLong {
                needed: 21,
                window: 20
            }
        );
        assert!(ContextBuilder::new(21, 0, vec![], vec![item(ContextRole::User, 17)]).is_ok());
    }

    #[test]
    fn reserved_output_counts_against_the_window() {
        assert!(ContextBuilder::new(100, 80, vec![], vec![item(ContextRole::User, 17)]).is_err());
        let mut b = ContextBuilder::new(100, 50, vec![], vec![item(ContextRole::User, 6)]).unwrap();
        assert!(b.offer(&stored("a", 36)));
        assert!(!b.offer(&stored("b", 0)));
    }
}
