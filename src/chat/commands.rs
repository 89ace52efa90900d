//! What the user types: a [`Command`] enum, one variant per command, its pure parser, and the
//! `impl Chat` steps that carry out the commands that take more than a line (speak, direct
//! message, nick change, quit); `Chat::handle_input` in `mod.rs` dispatches to them.
//!
//! The parser must not depend on state: parsing a line never looks at who is in the chat.

use super::{Chat, Due, Event};
use crate::event::Speech;
use crate::protocol::seal::MAX_SEALED_TEXT;
use crate::protocol::{self, check_nick, Frame, MemberId, MAX_TEXT};

/// The commands, for `/help`: one line each, shown one per event, every one narrower than
/// 80 columns so that no terminal wraps them.
pub const HELP_LINES: &[&str] = &[
    "type a line to send it; the commands:",
    "/msg NICK text        a direct message to NICK",
    "/me action            say what you do: * ana waves",
    "/nick NAME            change your name",
    "/names                who is here (also /who), with key fingerprints",
    "/whois NICK           who NICK is: its key's fingerprint, address, node",
    "/connect HOST[:PORT]  connect to another peer",
    "/help                 this list",
    "/quit [reason]        leave (also /exit, sair)",
    "//text                send a line that starts with /",
];

/// The commands Tab completes, as typed.
pub const COMMANDS: &[&str] = &[
    "/msg", "/me", "/nick", "/names", "/who", "/whois", "/connect", "/help", "/quit", "/exit",
];

/// One typed line, understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// A blank line: nothing to do.
    Blank,
    /// Plain text to send (a `//` escape has lost its first `/`).
    Say(&'a str),
    /// `/me action`.
    Me(&'a str),
    /// `/msg NICK text`.
    Msg { nick: &'a str, text: &'a str },
    /// `/nick NEW` (checked by the chat).
    Nick(&'a str),
    /// `/names` or `/who`.
    Names,
    /// `/whois NICK`: who that member is.
    Whois(&'a str),
    /// `/connect HOST[:PORT]`.
    Connect(&'a str),
    /// `/help`.
    Help,
    /// `sair`, `/quit [reason]`, `/exit [reason]`.
    Quit(Option<&'a str>),
    /// A known command used wrongly: the message to show.
    Usage(String),
    /// `/something` else: the word typed.
    Unknown(&'a str),
}

impl<'a> Command<'a> {
    /// Parses a typed line (without its `\n`). Never fails: every line means something.
    pub fn parse(line: &'a str) -> Command<'a> {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Command::Blank;
        }
        let (word, arg) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
        let arg = arg.trim();
        if is_leave_command(trimmed) {
            return Command::Quit(Some(arg).filter(|r| !r.is_empty()));
        }
        let Some(rest) = trimmed.strip_prefix('/') else {
            // Sent as typed, spaces and all.
            return Command::Say(line);
        };
        if rest.starts_with('/') {
            return Command::Say(&line[line.find('/').unwrap_or(0) + 1..]);
        }
        match word.to_ascii_lowercase().as_str() {
            "/help" => Command::Help,
            "/names" | "/who" => Command::Names,
            "/nick" => Command::Nick(arg),
            "/whois" if !arg.is_empty() && !arg.contains(' ') => Command::Whois(arg),
            "/whois" => Command::Usage("usage: /whois NICK".into()),
            "/me" if !arg.is_empty() => Command::Me(arg),
            "/msg" => match arg.split_once(' ') {
                Some((nick, text)) if !text.trim().is_empty() => Command::Msg {
                    nick,
                    text: text.trim(),
                },
                _ => Command::Usage("usage: /msg NICK text".into()),
            },
            "/connect" if !arg.is_empty() && !arg.contains(' ') => Command::Connect(arg),
            "/me" => Command::Usage("usage: /me action".into()),
            "/connect" => Command::Usage("usage: /connect HOST[:PORT]".into()),
            _ => Command::Unknown(word),
        }
    }
}

/// Lines that leave the chat, compared trimmed and in any case, as the seed programs did.
fn is_quit_word(word: &str) -> bool {
    ["sair", "/quit", "/exit"]
        .iter()
        .any(|q| word.eq_ignore_ascii_case(q))
}

/// True for a typed line that leaves the chat: `sair`, `/quit [reason]`, `/exit [reason]`.
pub fn is_leave_command(line: &str) -> bool {
    let trimmed = line.trim();
    let (word, arg) = trimmed.split_once(' ').unwrap_or((trimmed, ""));
    is_quit_word(word) && (arg.is_empty() || word.starts_with('/'))
}

impl Chat {
    /// Sends what the user typed: a message in as many frames as it takes, or an action (one
    /// frame; the rest of a very long one is cut).
    pub(super) fn speak(&mut self, text: &str, speech: Speech) {
        let most = match speech {
            Speech::Say => usize::MAX,
            Speech::Act => 1,
        };
        for piece in protocol::split_text(text, MAX_TEXT).take(most) {
            let id = self.next_id();
            let (from, nick, text) = (self.me, self.cfg.nick.clone(), piece.to_string());
            if self.neighbours.anyone() {
                self.out.show(Event::Sent {
                    speech,
                    from: nick.clone(),
                    text: text.clone(),
                });
            }
            let frame = match speech {
                Speech::Say => Frame::Msg {
                    id,
                    from,
                    nick,
                    text,
                },
                Speech::Act => Frame::Me {
                    id,
                    from,
                    nick,
                    text,
                },
            };
            self.out.originate(None, frame);
        }
    }

    /// What `/whois NICK` tells: the member, its key's fingerprint, where it is (`with_addr`:
    /// never to a guest, who is not shown addresses), and a warning if its nick was seen
    /// before with another key.
    pub(super) fn whois_lines(&self, nick: &str, with_addr: bool) -> Vec<String> {
        let member = match self.roster.resolve(nick) {
            Ok(m) => m,
            Err(msg) => return vec![msg],
        };
        let Some(m) = self.roster.get(&member) else {
            return vec![format!("{nick} is not here")];
        };
        let name = self.roster.display(member);
        let mut lines = vec![format!("{name}: member {member}")];
        let key = m.key.as_deref().unwrap_or("not known yet");
        lines.push(match member.guest {
            0 => format!("{name}: key {key}"),
            _ => format!(
                "{name}: a guest (no key of its own) of {} (key {key})",
                self.roster.display(MemberId::node(member.node))
            ),
        });
        if let Some(addr) = m.addr.as_ref().filter(|_| with_addr) {
            lines.push(format!("{name}: at {addr}"));
        }
        let how = if member == self.me {
            "this is you"
        } else if self.neighbours.peer_conn(member.node).is_some() {
            "connected to this node"
        } else if member.node == self.cfg.node {
            "a guest of this node"
        } else {
            "reached through other nodes"
        };
        lines.push(format!("{name}: {how}"));
        if let Some(was) = &m.key_was {
            lines.push(format!(
                "WARNING: {} was seen before with key {was}; this is another key",
                m.nick
            ));
        }
        lines
    }

    pub(super) fn direct(&mut self, nick: &str, text: &str) {
        let to = match self.roster.resolve(nick) {
            Ok(to) => to,
            Err(msg) => return self.out.show(Event::Error(msg)),
        };
        if to == self.me {
            return self
                .out
                .show(Event::Error("that is you; nothing was sent".into()));
        }
        let to_name = self.roster.display(to);
        let nick = self.cfg.nick.clone();
        let guest = self.neighbours.guest_conn(to, self.cfg.node);
        // A text too long to seal whole goes as several DMs, never cut.
        for text in protocol::split_text(text, MAX_SEALED_TEXT) {
            if let Some(conn) = guest {
                // Our own guest: handed the plain line, nothing crosses the mesh.
                let id = self.next_id();
                let frame = Frame::Dm {
                    id,
                    from: self.me,
                    nick: nick.clone(),
                    to,
                    text: text.to_string(),
                };
                self.out.send(conn, frame);
            } else {
                match self.seal_dm(self.me, &nick, to, text) {
                    Ok(frame) => self.out.sign_later(frame),
                    Err(msg) => return self.out.show(Event::Error(msg)),
                }
            }
            self.out.show(Event::Dm {
                from: nick.clone(),
                to: to_name.clone(),
                text: text.to_string(),
            });
        }
    }

    pub(super) fn change_nick(&mut self, new: &str) {
        if let Err(e) = check_nick(new) {
            return self
                .out
                .show(Event::Error(format!("cannot change nick: {e}")));
        }
        if new == self.cfg.nick {
            return;
        }
        let old = std::mem::replace(&mut self.cfg.nick, new.to_string());
        self.roster.update(self.me, new, None);
        self.learn_key(self.me);
        self.out.show(Event::Nick {
            old: old.clone(),
            nick: new.to_string(),
        });
        let id = self.next_id();
        self.out.originate(
            None,
            Frame::Nick {
                id,
                member: self.me,
                old,
                nick: new.to_string(),
            },
        );
    }

    pub(super) fn quit(&mut self, reason: Option<String>) {
        if self.quitting {
            return;
        }
        self.quitting = true;
        // Leaving: no more looking for others, nor saying we are here.
        self.timers.cancel(&Due::Scan);
        self.timers.cancel(&Due::Heartbeat);
        self.timers.cancel(&Due::Here);
        self.broadcast_leave(self.me, self.cfg.nick.clone(), reason);
        // Signed now, so the goodbye is queued before the caller starts to end.
        self.seal();
        // The user was told these wait for a peer: leaving, none will come for them.
        let unsent = self.history.loose_of(self.me);
        if unsent > 0 {
            self.out.show(Event::Info(format!(
                "{unsent} line(s) said while no peer was connected were not sent"
            )));
        }
        self.out.quit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_are_said_as_typed_and_blank_ones_are_nothing() {
        assert_eq!(Command::parse("  hi there "), Command::Say("  hi there "));
        assert_eq!(Command::parse("   "), Command::Blank);
        assert_eq!(Command::parse(""), Command::Blank);
        assert_eq!(Command::parse("sair agora"), Command::Say("sair agora"));
    }

    #[test]
    fn a_double_slash_escapes_a_line_that_starts_with_a_slash() {
        assert_eq!(
            Command::parse("//etc/passwd is a path"),
            Command::Say("/etc/passwd is a path")
        );
        assert_eq!(Command::parse("  //x"), Command::Say("/x"));
    }

    #[test]
    fn leave_words_in_any_case_with_or_without_a_reason() {
        assert_eq!(Command::parse(" SAIR "), Command::Quit(None));
        assert_eq!(Command::parse("/Exit"), Command::Quit(None));
        assert_eq!(
            Command::parse("/quit going  home "),
            Command::Quit(Some("going  home"))
        );
        assert!(is_leave_command("/QUIT now"));
        assert!(!is_leave_command("sair agora"));
        assert!(!is_leave_command("/quitter"));
    }

    #[test]
    fn each_command_and_its_arguments() {
        assert_eq!(Command::parse("/HELP"), Command::Help);
        assert_eq!(Command::parse("/names"), Command::Names);
        assert_eq!(Command::parse("/who"), Command::Names);
        assert_eq!(Command::parse("/nick  ana "), Command::Nick("ana"));
        assert_eq!(Command::parse("/me waves  "), Command::Me("waves"));
        assert_eq!(
            Command::parse("/msg bob  hi there "),
            Command::Msg {
                nick: "bob",
                text: "hi there"
            }
        );
        assert_eq!(
            Command::parse("/connect host:5000"),
            Command::Connect("host:5000")
        );
        assert_eq!(Command::parse("/bogus x"), Command::Unknown("/bogus"));
    }

    #[test]
    fn commands_used_wrongly_say_how_to_use_them() {
        let usage = |s: &str| match Command::parse(s) {
            Command::Usage(u) => u,
            other => panic!("{s:?} gave {other:?}"),
        };
        assert_eq!(usage("/msg bob"), "usage: /msg NICK text");
        assert_eq!(usage("/msg bob   "), "usage: /msg NICK text");
        assert_eq!(usage("/me"), "usage: /me action");
        assert_eq!(usage("/connect"), "usage: /connect HOST[:PORT]");
        assert_eq!(usage("/connect a b"), "usage: /connect HOST[:PORT]");
    }

    #[test]
    fn a_command_alone_in_capitals_shows_its_own_usage() {
        let usage = |s: &str| match Command::parse(s) {
            Command::Usage(u) => u,
            other => panic!("{s:?} gave {other:?}"),
        };
        assert_eq!(usage("/ME"), "usage: /me action");
        assert_eq!(usage("/Me  "), "usage: /me action");
        assert_eq!(usage("/CONNECT"), "usage: /connect HOST[:PORT]");
        assert_eq!(Command::parse("/ME waves"), Command::Me("waves"));
    }

    #[test]
    fn help_is_a_short_list_that_fits_80_columns_and_names_every_command() {
        assert!(HELP_LINES.len() > 1);
        for line in HELP_LINES {
            assert!(line.chars().count() < 80, "{line:?}");
        }
        // Every command Tab completes is explained.
        for command in COMMANDS {
            assert!(
                HELP_LINES
                    .iter()
                    .any(|l| l.split([' ', '(', ',', ')']).any(|w| w == *command)),
                "{command} is not in /help"
            );
        }
    }
}
