//! Guests as people: the welcome a connection gets once it is taken for a guest (or the line
//! that turns it away when its address has `--max-guests-per-ip` guests already), and the
//! commands a guest may type (`/nick`, `/names`, `/msg`, `/me`, `/help`, `/quit`), each answered
//! to that guest alone. Its plain lines are its messages (the relay's `guest_line`, which also
//! applies the flood limit, the guest's and its address's, to every line before it gets here).
//!
//! The lines a guest is told are built by the free functions below; the `impl Chat` steps carry
//! out the commands. Must not classify connections (the handshake does) nor make text
//! terminal-safe (the caller does, for every line it tells a guest). Every line told starts with
//! `* `: a slow peerchat node taken for a guest before its hello came reads such lines as guest
//! text and lets them be (see `protocol::is_guest_text`).

use std::net::IpAddr;

use unicode_width::UnicodeWidthStr;

use super::neighbours::Kind;
use super::{Chat, Command, ConnId, Event};
use crate::event::{Name, Role};
use crate::protocol::seal::MAX_SEALED_TEXT;
use crate::protocol::{self, check_nick, Frame, MemberId, MAX_TEXT};

/// The widest line a guest is told, in columns, where the names in it allow.
const WIDTH: usize = 79;

/// Past this many members, the welcome gives how many are here, not who (a hub with thousands
/// of guests would otherwise sort its whole roster for every guest that connects).
const WELCOME_NAMES_MAX: usize = 64;

/// The welcome's last lines: what a guest may type, and how to leave.
const WELCOME_COMMANDS: [&str; 2] = [
    "* commands: /names, /msg NICK text, /me action, /help",
    "* /quit or sair leaves; //text sends a line starting with /",
];

/// What `/help` tells a guest.
pub(super) const GUEST_HELP: [&str; 8] = [
    "* type a line to send it to everyone. Commands:",
    "*   /nick NAME       change your name",
    "*   /names           who is here",
    "*   /whois NICK      who NICK is: its key's fingerprint",
    "*   /msg NICK text   a message for NICK alone",
    "*   /me action       an action, shown as * NICK action",
    "*   /quit [reason]   leave (also /exit or sair)",
    "*   //text           send a line that starts with /",
];

/// One name of a list as a guest reads it: no addresses (guests are not shown where others
/// connect from), itself marked.
fn entry(name: &Name) -> String {
    if name.you {
        format!("{} (you)", name.nick)
    } else {
        name.nick.clone()
    }
}

/// The whole `/names` list for a guest, wrapped at [`WIDTH`]: `* 3 here: ana, bob, zoe (you)`.
pub(super) fn names_lines(names: &[Name]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = format!("* {} here:", names.len());
    for (i, name) in names.iter().map(entry).enumerate() {
        let (first, last) = (i == 0, i + 1 == names.len());
        let sep = if first { " " } else { ", " };
        // Room for the comma that ends the line if the next name does not fit.
        let comma = usize::from(!last);
        if !first && line.width() + sep.len() + name.width() + comma > WIDTH {
            line.push(',');
            lines.push(std::mem::replace(&mut line, format!("*   {name}")));
        } else {
            line.push_str(sep);
            line.push_str(&name);
        }
    }
    lines.push(line);
    lines
}

/// The list on one line of at most [`WIDTH`] columns: as many names as fit, then
/// `and N more (/names)`.
pub(super) fn names_glance(names: &[Name]) -> String {
    let more = |n: usize| format!(" and {n} more (/names)");
    let mut line = format!("* {} here:", names.len());
    for (i, name) in names.iter().map(entry).enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        let left = names.len() - i - 1;
        let tail = if left == 0 { 0 } else { more(left).len() };
        if i > 0 && line.width() + sep.len() + name.width() + tail > WIDTH {
            line.push_str(&more(names.len() - i));
            break;
        }
        line.push_str(sep);
        line.push_str(&name);
    }
    line
}

/// What a connection turned away by `--max-guests-per-ip` (`max`) is told.
pub(super) fn too_many_line(max: usize) -> String {
    format!("* too many guests from your address ({max}); try again later")
}

/// Why a guest was refused before it joined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Its address has `--max-guests-per-ip` guests here already.
    TooMany,
    /// Guests from its address came (and went) faster than their shared flood budget allows.
    TooFast,
}

impl Chat {
    /// True if address `source` has all the guests it may have (`--max-guests-per-ip`).
    pub(super) fn too_many_guests_from(&self, source: IpAddr) -> bool {
        self.cfg
            .max_guests_per_ip
            .is_some_and(|max| self.neighbours.guests_from(source) >= max)
    }

    /// `conn`, from `source`, would be one guest too many from there: it is told so and closed,
    /// and never joins (nobody sees it come or go). The user is shown it, once a minute at most
    /// for an address, so that a stream of refused connections is not a stream of notices.
    pub(super) fn refuse_guest(&mut self, conn: ConnId, source: IpAddr, why: Refusal) {
        let max = self.cfg.max_guests_per_ip.unwrap_or(0);
        self.forget_conn(conn);
        // As a guest, so that the line goes out as text (with what was held for it, if
        // anything: at most the hello wait's worth of chat).
        self.out.classify(conn, Role::Guest);
        let (told, notice) = match why {
            Refusal::TooMany => (
                too_many_line(max),
                format!(
                    "too many guests from {source} ({max}, --max-guests-per-ip): refusing more \
                     from there"
                ),
            ),
            Refusal::TooFast => (
                "* your address is past its flood limit (lines and joins); try again later"
                    .to_string(),
                format!(
                    "guests from {source} are past --rate-limit (lines and joins): refusing \
                     newcomers from there for now"
                ),
            ),
        };
        self.out.tell(conn, told);
        self.out.retire(conn);
        if self.neighbours.notice_refusal(source, self.clock) {
            self.out.show(Event::Info(notice));
        }
    }

    /// Tells guest `conn` (`member`, called `nick`) who it is, who is here and what it may
    /// type. Call once it is on the roster.
    pub(super) fn welcome_guest(&mut self, conn: ConnId, member: MemberId, nick: &str) {
        self.out
            .tell(conn, format!("* you are {nick} (/nick NAME changes it)"));
        let here = if self.roster.len() > WELCOME_NAMES_MAX {
            format!("* {} here (/names lists them)", self.roster.len())
        } else {
            names_glance(&self.roster.names_as(member))
        };
        self.out.tell(conn, here);
        for line in WELCOME_COMMANDS {
            self.out.tell(conn, line.to_string());
        }
        self.hand_guest_history(conn);
    }

    /// A command typed by guest `conn` (`member`): answered to it alone. Plain text is the
    /// relay's.
    pub(super) fn guest_command(&mut self, conn: ConnId, member: MemberId, command: Command) {
        match command {
            Command::Blank | Command::Say(_) => {}
            Command::Quit(reason) => self.guest_quit(conn, reason.map(str::to_string)),
            Command::Me(text) => self.guest_act(conn, member, text),
            Command::Msg { nick, text } => self.guest_direct(conn, member, nick, text),
            Command::Nick(new) => self.guest_nick(conn, member, new),
            Command::Names => {
                for line in names_lines(&self.roster.names_as(member)) {
                    self.out.tell(conn, line);
                }
            }
            Command::Whois(nick) => {
                for line in self.whois_lines(nick, false) {
                    self.out.tell(conn, format!("* {line}"));
                }
            }
            Command::Help => {
                for line in GUEST_HELP {
                    self.out.tell(conn, line.to_string());
                }
            }
            Command::Connect(_) => self.out.tell(
                conn,
                "* only the node's own user can /connect; nothing was done".into(),
            ),
            Command::Usage(usage) => self.out.tell(conn, format!("* {usage}")),
            Command::Unknown(word) => self.out.tell(
                conn,
                format!("* unknown command {word}; nothing was sent (type /help)"),
            ),
        }
    }

    /// The nick guest `conn` goes by (as it is in its frames), if it is one.
    fn guest_nick_of(&mut self, conn: ConnId) -> Option<&mut String> {
        match self.neighbours.get_mut(conn).map(|c| &mut c.kind) {
            Some(Kind::Guest(g)) => Some(&mut g.nick),
            _ => None,
        }
    }

    /// `/nick NEW` from a guest: the peers' rules, and no nick someone here goes by or that
    /// looks like one.
    fn guest_nick(&mut self, conn: ConnId, member: MemberId, new: &str) {
        if let Err(e) = check_nick(new) {
            return self.out.tell(conn, format!("* cannot change nick: {e}"));
        }
        let Some(old) = self.guest_nick_of(conn).map(|n| n.clone()) else {
            return;
        };
        if old == new {
            return self.out.tell(conn, format!("* you are {new} already"));
        }
        if let Some(why) = self.roster.taken(new, member) {
            return self.out.tell(conn, format!("* cannot change nick: {why}"));
        }
        if let Some(nick) = self.guest_nick_of(conn) {
            *nick = new.to_string();
        }
        let before = self.roster.display(member);
        self.roster.update(member, new, None);
        self.out.show(Event::Nick {
            old: before,
            nick: self.roster.display(member),
        });
        let id = self.next_id();
        // To the guest too: it sees its change as everyone does.
        self.out.originate(
            None,
            Frame::Nick {
                id,
                member,
                old,
                nick: new.to_string(),
            },
        );
    }

    /// `/me action` from a guest: shown to everyone, the guest included.
    fn guest_act(&mut self, conn: ConnId, member: MemberId, text: &str) {
        let Some(nick) = self.guest_nick_of(conn).map(|n| n.clone()) else {
            return;
        };
        let Some(text) = protocol::split_text(text, MAX_TEXT).next() else {
            return;
        };
        let id = self.next_id();
        self.out.show(Event::Me {
            from: self.roster.display(member),
            text: text.to_string(),
        });
        self.out.originate(
            None,
            Frame::Me {
                id,
                from: member,
                nick,
                text: text.to_string(),
            },
        );
    }

    /// `/msg NICK text` from a guest: delivered as the node's own DMs are, and echoed to it.
    fn guest_direct(&mut self, conn: ConnId, member: MemberId, nick: &str, text: &str) {
        let to = match self.roster.resolve(nick) {
            Ok(to) => to,
            Err(msg) => return self.out.tell(conn, format!("* {msg}")),
        };
        if to == member {
            return self
                .out
                .tell(conn, "* that is you; nothing was sent".into());
        }
        let Some(from_nick) = self.guest_nick_of(conn).map(|n| n.clone()) else {
            return;
        };
        let to_name = self.roster.display(to);
        let guest = self.neighbours.guest_conn(to, self.cfg.node);
        // A text too long to seal whole goes as several DMs, never cut.
        for text in protocol::split_text(text, MAX_SEALED_TEXT) {
            if to == self.me {
                self.out.show(Event::Dm {
                    from: self.roster.display(member),
                    to: self.cfg.nick.clone(),
                    text: text.to_string(),
                });
            } else if let Some(guest) = guest {
                let id = self.next_id();
                let frame = Frame::Dm {
                    id,
                    from: member,
                    nick: from_nick.clone(),
                    to,
                    text: text.to_string(),
                };
                self.out.send(guest, frame);
            } else {
                // Sealed by this node, the guest's host: guests hold no key.
                match self.seal_dm(member, &from_nick, to, text) {
                    Ok(frame) => self.out.sign_later(frame),
                    Err(msg) => return self.out.tell(conn, format!("* {msg}")),
                }
            }
            self.out.tell(conn, format!("[dm -> {to_name}] {text}"));
        }
    }

    /// `/quit`, `/exit` or `sair` from a guest: it is told goodbye and let go once that is
    /// out; everyone else sees it leave.
    fn guest_quit(&mut self, conn: ConnId, reason: Option<String>) {
        let Some(nick) = self.guest_nick_of(conn).map(|n| n.clone()) else {
            return;
        };
        self.out.tell(conn, format!("* bye, {nick}"));
        // Before its leave is broadcast: the guest has its goodbye already.
        self.out.retire(conn);
        self.handle_closed(conn, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(nicks: &[&str], you: &str) -> Vec<Name> {
        nicks
            .iter()
            .map(|n| Name {
                nick: n.to_string(),
                addr: Some("10.0.0.1:5000".into()),
                you: *n == you,
                key: None,
                key_was: None,
                unencrypted: false,
                found: None,
            })
            .collect()
    }

    #[test]
    fn a_short_list_is_one_line_without_addresses() {
        let list = names(&["ana", "bob", "guest-2"], "guest-2");
        assert_eq!(names_glance(&list), "* 3 here: ana, bob, guest-2 (you)");
        assert_eq!(
            names_lines(&list),
            vec!["* 3 here: ana, bob, guest-2 (you)"]
        );
    }

    #[test]
    fn a_long_list_is_cut_in_the_welcome_and_wrapped_for_names() {
        let nicks: Vec<String> = (0..40).map(|i| format!("member-{i:02}")).collect();
        let refs: Vec<&str> = nicks.iter().map(String::as_str).collect();
        let list = names(&refs, "member-39");
        let glance = names_glance(&list);
        assert!(glance.width() <= WIDTH, "{glance}");
        assert!(glance.starts_with("* 40 here: member-00, member-01, "));
        let shown = glance.matches("member-").count();
        assert!(
            glance.ends_with(&format!(" and {} more (/names)", 40 - shown)),
            "{glance}"
        );
        let lines = names_lines(&list);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.width() <= WIDTH), "{lines:#?}");
        assert!(lines[1..].iter().all(|l| l.starts_with("*   member-")));
        let all = lines.join(" ");
        assert_eq!(all.matches("member-").count(), 40);
        assert!(all.ends_with("member-39 (you)"));
    }

    #[test]
    fn every_line_told_fits_and_reads_as_guest_text() {
        let refused = too_many_line(usize::MAX);
        let refused = [refused.as_str()];
        for line in WELCOME_COMMANDS.iter().chain(&GUEST_HELP).chain(&refused) {
            assert!(line.width() <= WIDTH, "{line}");
            assert!(protocol::is_guest_text(line), "{line}");
        }
    }
}
