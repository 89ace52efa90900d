//! The vocabulary shared by the chat, the output, the event log and the fan-out log: what the
//! other end of a connection is ([`Role`]) and what the user is shown ([`Event`], [`Name`]).
//!
//! Holds types only. It sits below the chat so that `output`, `eventlog` and `fanout` never
//! import the chat itself.

/// What the other end of a connection turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A peerchat node: it speaks frames.
    Peer,
    /// Anything else (nc, telnet, a script): it sends plain lines and gets plain lines.
    Guest,
}

/// A message, or an action (`/me`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speech {
    Say,
    Act,
}

impl Speech {
    /// `<from> text` or `* from text`, as a line of text shows it.
    pub fn line(self, from: &str, text: &str) -> String {
        match self {
            Speech::Say => format!("<{from}> {text}"),
            Speech::Act => format!("* {from} {text}"),
        }
    }
}

/// A message or action said before it reached this node, at `at` (unix milliseconds, as the
/// peer that handed it on dated it): history, said before this node was in the chat, or
/// `late`, said while this node was cut off from the part of the chat it was said in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Past {
    pub speech: Speech,
    pub from: String,
    pub text: String,
    pub at: u64,
    pub late: bool,
}

impl Past {
    /// `history` or `late`: how it is marked.
    pub fn mark(&self) -> &'static str {
        if self.late {
            "late"
        } else {
            "history"
        }
    }
}

/// One line of `/names`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub nick: String,
    pub addr: Option<String>,
    pub you: bool,
    /// The fingerprint of its node's key (a guest has none of its own).
    pub key: Option<String>,
    /// Set when this nick was seen before with another key: the fingerprint remembered.
    pub key_was: Option<String>,
    /// A guest of a private group, whose link is plain text.
    pub unencrypted: bool,
    /// How this node came to be linked with the member's node; `None` for this node, guests,
    /// and members reached through another node (relayed).
    pub found: Option<Found>,
}

/// How a node came to be a neighbour of this one, as `/names` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// Dialled because its LAN beacon (`--lan`) was heard.
    Beacon,
    /// Dialled: the command line, `/connect`, a mesh scan, a `PEERS` list.
    Dialled,
    /// It dialled this node.
    Accepted,
}

impl Found {
    /// The word `/names` shows, and JSON's `"found"` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Found::Beacon => "beacon",
            Found::Dialled => "dialled",
            Found::Accepted => "accepted",
        }
    }
}

/// How a join or `/names` marks a guest of a private group.
pub const UNENCRYPTED_NOTE: &str = "unencrypted guest";

/// Something for the user to see (or, for `Sent`, only for the event log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Message {
        from: String,
        text: String,
    },
    Me {
        from: String,
        text: String,
    },
    Dm {
        from: String,
        to: String,
        text: String,
    },
    Nick {
        old: String,
        nick: String,
    },
    Join {
        nick: String,
        addr: Option<String>,
        /// A guest of a private group: what it says and reads crosses the network readable.
        unencrypted: bool,
    },
    Leave {
        nick: String,
        addr: Option<String>,
        reason: Option<String>,
    },
    /// A message or action said before it reached this node (history, or late).
    Past(Past),
    Names(Vec<Name>),
    /// The local user said this (a message, or an action for `/me`). Not shown in line mode
    /// (the user sees what they typed); shown as a chat line on the interactive terminal.
    Sent {
        speech: Speech,
        from: String,
        text: String,
    },
    Info(String),
    Error(String),
}
