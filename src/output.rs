//! What the user sees on stdout: events rendered for a person (local time, optional colours,
//! control characters neutralised) or as JSON lines for scripts.
//!
//! Buffered: the reactor flushes once per loop turn. Must not decide what happened, only show it.

use std::io::{self, Write};

use chrono::{Local, SecondsFormat, TimeZone, Utc};

#[cfg(test)]
use crate::event::Past;
use crate::event::{Event, Name, Speech, UNENCRYPTED_NOTE};
use crate::safe::sanitize;

/// How events are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `HH:MM:SS <nick> text` and `HH:MM:SS * event`, coloured when `colour` is set.
    Human { colour: bool },
    /// One JSON object per line.
    Json,
}

/// Renders events into a buffered writer.
pub struct Output<W: Write> {
    format: Format,
    /// `-q`: chat traffic (messages, joins, leaves...) is not shown; notices and errors are.
    quiet: bool,
    w: io::BufWriter<W>,
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const NICK_COLOURS: [&str; 6] = [
    "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[34m", "\x1b[35m", "\x1b[36m",
];

fn nick_colour(nick: &str) -> &'static str {
    let h = nick
        .bytes()
        .fold(5381u32, |h, b| h.wrapping_mul(33) ^ u32::from(b));
    NICK_COLOURS[h as usize % NICK_COLOURS.len()]
}

/// `HH:MM:SS`, local time, of unix milliseconds `ms`.
pub(crate) fn clock_of(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    Local
        .timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| "--:--:--".into(), |t| t.format("%H:%M:%S").to_string())
}

/// RFC 3339 in UTC, to the millisecond, of unix milliseconds `ms`.
fn utc_of(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(String::new, |t| {
            t.to_rfc3339_opts(SecondsFormat::Millis, true)
        })
}

/// A JSON string literal for `s`, escaped by serde_json.
fn js(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

impl<W: Write> Output<W> {
    pub fn new(format: Format, w: W) -> Self {
        Output {
            format,
            quiet: false,
            w: io::BufWriter::with_capacity(64 * 1024, w),
        }
    }

    /// Shows only notices, errors and answers to commands (`-q`, for a node that only relays).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// False for an event `-q` hides.
    pub fn shows(&self, event: &Event) -> bool {
        let traffic = !matches!(event, Event::Info(_) | Event::Error(_) | Event::Names(_));
        !(self.quiet && traffic)
    }

    /// The buffered writer, for the interactive terminal, which draws by itself.
    pub fn writer(&mut self) -> &mut io::BufWriter<W> {
        &mut self.w
    }

    /// Appends one event to the buffer.
    pub fn show(&mut self, event: &Event) -> io::Result<()> {
        if !self.shows(event) {
            return Ok(());
        }
        match self.format {
            Format::Json => self.json(event),
            Format::Human { colour } => self.human(event, colour),
        }
    }

    /// Writes out everything buffered; call once per loop turn.
    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }

    fn json(&mut self, event: &Event) -> io::Result<()> {
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let body = match event {
            Event::Message { from, text } => {
                format!(r#""message","from":{},"text":{}"#, js(from), js(text))
            }
            Event::Me { from, text } => {
                format!(r#""me","from":{},"text":{}"#, js(from), js(text))
            }
            Event::Past(p) => format!(
                r#""{}","from":{},"text":{},"{}":true,"at":{}"#,
                match p.speech {
                    Speech::Say => "message",
                    Speech::Act => "me",
                },
                js(&p.from),
                js(&p.text),
                p.mark(),
                js(&utc_of(p.at))
            ),
            Event::Dm { from, to, text } => format!(
                r#""dm","from":{},"to":{},"text":{}"#,
                js(from),
                js(to),
                js(text)
            ),
            Event::Nick { old, nick } => {
                format!(r#""nick","old":{},"nick":{}"#, js(old), js(nick))
            }
            Event::Join { nick, addr, .. } | Event::Leave { nick, addr, .. } => {
                let kind = if matches!(event, Event::Join { .. }) {
                    "join"
                } else {
                    "leave"
                };
                let mut s = format!(r#""{kind}","nick":{}"#, js(nick));
                if let Some(a) = addr {
                    s.push_str(&format!(r#","addr":{}"#, js(a)));
                }
                if let Event::Leave {
                    reason: Some(r), ..
                } = event
                {
                    s.push_str(&format!(r#","reason":{}"#, js(r)));
                }
                if let Event::Join {
                    unencrypted: true, ..
                } = event
                {
                    s.push_str(r#","unencrypted":true"#);
                }
                s
            }
            Event::Names(names) => {
                let list: Vec<serde_json::Value> = names
                    .iter()
                    .map(|n| {
                        let mut o = serde_json::Map::new();
                        o.insert("nick".into(), n.nick.clone().into());
                        if let Some(a) = &n.addr {
                            o.insert("addr".into(), a.clone().into());
                        }
                        if n.you {
                            o.insert("you".into(), true.into());
                        }
                        if let Some(k) = &n.key {
                            o.insert("key".into(), k.clone().into());
                        }
                        if let Some(k) = &n.key_was {
                            o.insert("key_was".into(), k.clone().into());
                        }
                        if n.unencrypted {
                            o.insert("unencrypted".into(), true.into());
                        }
                        if let Some(f) = n.found {
                            o.insert("found".into(), f.as_str().into());
                        }
                        serde_json::Value::Object(o)
                    })
                    .collect();
                format!(r#""names","names":{}"#, serde_json::Value::from(list))
            }
            Event::Sent { .. } => return Ok(()),
            Event::Info(text) => format!(r#""info","text":{}"#, js(text)),
            Event::Error(text) => format!(r#""error","text":{}"#, js(text)),
        };
        writeln!(self.w, r#"{{"ts":"{ts}","event":{body}}}"#)
    }

    fn human(&mut self, event: &Event, colour: bool) -> io::Result<()> {
        if let Event::Sent { .. } = event {
            // The user sees what they typed already.
            return Ok(());
        }
        let reset = paint(colour, RESET);
        if let Event::Past(p) = event {
            // Dim as a whole, stamped with its own time, and marked in words for a pipe.
            let said = p.speech.line(&sanitize(&p.from), &sanitize(&p.text));
            let (dim, time, mark) = (paint(colour, DIM), clock_of(p.at), p.mark());
            return writeln!(self.w, "{dim}{time} [{mark}] {said}{reset}");
        }
        let time = Local::now().format("%H:%M:%S");
        write!(self.w, "{}{time}{reset} ", paint(colour, DIM))?;
        match event {
            Event::Message { from, text } => {
                let nc = if colour { nick_colour(from) } else { "" };
                writeln!(self.w, "{nc}<{}>{reset} {}", sanitize(from), sanitize(text))
            }
            Event::Me { from, text } => {
                let nc = if colour { nick_colour(from) } else { "" };
                writeln!(self.w, "{nc}* {}{reset} {}", sanitize(from), sanitize(text))
            }
            Event::Dm { from, to, text } => writeln!(
                self.w,
                "{}[dm {} -> {}]{reset} {}",
                paint(colour, YELLOW),
                sanitize(from),
                sanitize(to),
                sanitize(text)
            ),
            Event::Nick { old, nick } => writeln!(
                self.w,
                "{}* {} is now known as {}{reset}",
                paint(colour, YELLOW),
                sanitize(old),
                sanitize(nick)
            ),
            Event::Join {
                nick,
                addr,
                unencrypted,
            } => self.human_join(nick, addr.as_deref(), *unencrypted, colour),
            Event::Leave { nick, reason, .. } => self.human_leave(nick, reason.as_deref(), colour),
            Event::Names(names) => writeln!(
                self.w,
                "{}* {} here: {}{reset}",
                paint(colour, DIM),
                names.len(),
                names_list(names)
            ),
            Event::Info(text) => {
                writeln!(self.w, "{}* {}{reset}", paint(colour, DIM), sanitize(text))
            }
            Event::Error(text) => {
                let red = paint(colour, RED);
                writeln!(self.w, "{red}* error: {}{reset}", sanitize(text))
            }
            Event::Sent { .. } | Event::Past(_) => Ok(()),
        }
    }

    /// `* nick joined`, `from addr` when the address is known, and the note for a guest of a
    /// private group.
    fn human_join(
        &mut self,
        nick: &str,
        addr: Option<&str>,
        unencrypted: bool,
        colour: bool,
    ) -> io::Result<()> {
        let (yellow, reset) = (paint(colour, YELLOW), paint(colour, RESET));
        write!(self.w, "{yellow}* {} joined", sanitize(nick))?;
        if let Some(a) = addr {
            write!(self.w, " from {}", sanitize(a))?;
        }
        if unencrypted {
            write!(self.w, " ({UNENCRYPTED_NOTE})")?;
        }
        writeln!(self.w, "{reset}")
    }

    /// `* nick timed out` when that is the reason, else `* nick left` and the reason if any.
    fn human_leave(&mut self, nick: &str, reason: Option<&str>, colour: bool) -> io::Result<()> {
        let (yellow, reset) = (paint(colour, YELLOW), paint(colour, RESET));
        if reason == Some("timed out") {
            return writeln!(self.w, "{yellow}* {} timed out{reset}", sanitize(nick));
        }
        write!(self.w, "{yellow}* {} left", sanitize(nick))?;
        if let Some(r) = reason {
            write!(self.w, " ({})", sanitize(r))?;
        }
        writeln!(self.w, "{reset}")
    }
}

/// `code` when colours are on, else nothing.
fn paint(colour: bool, code: &'static str) -> &'static str {
    if colour {
        code
    } else {
        ""
    }
}

/// `/names` for a person: `nick (you)`, `nick (addr)`, `nick (addr, beacon)` (how a neighbour
/// was found) or `nick`, comma-separated.
pub(crate) fn names_list(names: &[Name]) -> String {
    let list: Vec<String> = names
        .iter()
        .map(|n| {
            let mut s = sanitize(&n.nick).into_owned();
            let mut notes = Vec::new();
            if n.you {
                notes.push("you".to_string());
            } else if let Some(a) = &n.addr {
                notes.push(sanitize(a).into_owned());
            }
            if let Some(f) = n.found {
                notes.push(f.as_str().to_string());
            }
            if let Some(k) = &n.key {
                notes.push(format!("key {k}"));
            }
            if let Some(was) = &n.key_was {
                notes.push(format!("KEY CHANGED, was {was}"));
            }
            if n.unencrypted {
                notes.push(UNENCRYPTED_NOTE.to_string());
            }
            if !notes.is_empty() {
                s.push_str(&format!(" ({})", notes.join(", ")));
            }
            s
        })
        .collect();
    list.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(format: Format, event: Event) -> String {
        let mut out = Output::new(format, Vec::new());
        out.show(&event).unwrap();
        out.flush().unwrap();
        String::from_utf8(out.w.into_inner().unwrap()).unwrap()
    }

    fn msg(text: &str) -> Event {
        Event::Message {
            from: "bob".into(),
            text: text.into(),
        }
    }

    #[test]
    fn names_say_how_a_neighbour_was_found() {
        let name = |nick: &str, found| crate::event::Name {
            nick: nick.into(),
            addr: Some("10.0.0.2:5000".into()),
            you: false,
            key: None,
            key_was: None,
            unencrypted: false,
            found,
        };
        use crate::event::Found;
        let list = names_list(&[
            name("ana", Some(Found::Beacon)),
            name("bob", Some(Found::Accepted)),
            name("cy", Some(Found::Dialled)),
            name("dee", None),
        ]);
        assert_eq!(
            list,
            "ana (10.0.0.2:5000, beacon), bob (10.0.0.2:5000, accepted), \
             cy (10.0.0.2:5000, dialled), dee (10.0.0.2:5000)"
        );
    }

    #[test]
    fn human_lines_have_time_nick_and_text() {
        let s = render(Format::Human { colour: false }, msg("hi ação 你好"));
        let (time, rest) = s.split_at(8);
        assert!(
            chrono::NaiveTime::parse_from_str(time, "%H:%M:%S").is_ok(),
            "{s}"
        );
        assert_eq!(rest, " <bob> hi ação 你好\n");
        let s = render(
            Format::Human { colour: false },
            Event::Leave {
                nick: "bob".into(),
                addr: None,
                reason: Some("timed out".into()),
            },
        );
        assert!(s.ends_with(" * bob timed out\n"), "{s}");
        let human = |e: Event| render(Format::Human { colour: false }, e)[9..].to_string();
        assert_eq!(
            human(Event::Leave {
                nick: "bob".into(),
                addr: None,
                reason: Some("bye".into()),
            }),
            "* bob left (bye)\n"
        );
        assert_eq!(
            human(Event::Me {
                from: "bob".into(),
                text: "waves".into()
            }),
            "* bob waves\n"
        );
        assert_eq!(
            human(Event::Dm {
                from: "bob".into(),
                to: "ana".into(),
                text: "psst".into()
            }),
            "[dm bob -> ana] psst\n"
        );
        assert_eq!(
            human(Event::Nick {
                old: "bob".into(),
                nick: "rob".into()
            }),
            "* bob is now known as rob\n"
        );
        assert_eq!(
            render(
                Format::Human { colour: false },
                Event::Sent {
                    speech: crate::event::Speech::Say,
                    from: "me".into(),
                    text: "x".into()
                }
            ),
            ""
        );
    }

    #[test]
    fn history_and_late_lines_carry_their_own_time_and_mark() {
        // 2026-11-21T14:04:12.310Z
        let at = 1_795_269_852_310;
        let past = |speech, late| {
            Event::Past(Past {
                speech,
                from: "eve".into(),
                text: "hi \x1b".into(),
                at,
                late,
            })
        };
        let v: serde_json::Value =
            serde_json::from_str(&render(Format::Json, past(Speech::Say, true))).unwrap();
        assert_eq!(
            (&v["event"], &v["late"], &v["at"], &v["text"]),
            (
                &"message".into(),
                &true.into(),
                &"2026-11-21T14:04:12.310Z".into(),
                &"hi \x1b".into()
            )
        );
        assert!(v.get("history").is_none(), "{v}");
        let v: serde_json::Value =
            serde_json::from_str(&render(Format::Json, past(Speech::Act, false))).unwrap();
        assert_eq!((&v["event"], &v["history"]), (&"me".into(), &true.into()));
        let line = render(Format::Human { colour: false }, past(Speech::Say, false));
        assert_eq!(line, format!("{} [history] <eve> hi ^[\n", clock_of(at)));
        let line = render(Format::Human { colour: true }, past(Speech::Act, true));
        assert!(
            line.starts_with(DIM) && line.contains("[late] * eve hi"),
            "{line:?}"
        );
    }

    #[test]
    fn quiet_shows_only_notices_errors_and_answers() {
        let mut out = Output::new(Format::Human { colour: false }, Vec::new()).quiet();
        out.show(&msg("hidden")).unwrap();
        out.show(&Event::Join {
            nick: "bob".into(),
            addr: None,
            unencrypted: false,
        })
        .unwrap();
        out.show(&Event::Info("listening on 127.0.0.1:5000".into()))
            .unwrap();
        out.show(&Event::Error("cannot connect".into())).unwrap();
        out.flush().unwrap();
        let s = String::from_utf8(out.w.into_inner().unwrap()).unwrap();
        assert_eq!(s.lines().count(), 2, "{s}");
        assert!(!s.contains("hidden") && !s.contains("bob"), "{s}");
    }

    #[test]
    fn json_for_mesh_events() {
        let json = |e: Event| {
            let s = render(Format::Json, e);
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            v
        };
        let v = json(Event::Dm {
            from: "a".into(),
            to: "b".into(),
            text: "t".into(),
        });
        assert_eq!(
            (
                v["event"].as_str(),
                v["from"].as_str(),
                v["to"].as_str(),
                v["text"].as_str()
            ),
            (Some("dm"), Some("a"), Some("b"), Some("t"))
        );
        let v = json(Event::Nick {
            old: "a".into(),
            nick: "b".into(),
        });
        assert_eq!(
            (v["old"].as_str(), v["nick"].as_str()),
            (Some("a"), Some("b"))
        );
        let v = json(Event::Me {
            from: "a".into(),
            text: "waves".into(),
        });
        assert_eq!(v["event"], "me");
        let v = json(Event::Names(vec![
            crate::event::Name {
                nick: "a".into(),
                addr: None,
                you: true,
                key: None,
                key_was: None,
                unencrypted: false,
                found: None,
            },
            crate::event::Name {
                nick: "b".into(),
                addr: Some("127.0.0.1:5001".into()),
                you: false,
                key: None,
                key_was: None,
                unencrypted: false,
                found: Some(crate::event::Found::Beacon),
            },
        ]));
        assert_eq!(v["names"][0]["you"], true);
        assert_eq!(v["names"][0].get("found"), None);
        assert_eq!(v["names"][1]["addr"], "127.0.0.1:5001");
        assert_eq!(v["names"][1]["found"], "beacon");
        assert!(render(
            Format::Json,
            Event::Sent {
                speech: crate::event::Speech::Act,
                from: "a".into(),
                text: "x".into()
            }
        )
        .is_empty());
    }

    #[test]
    fn human_output_neutralises_peer_escapes_even_in_colour() {
        for colour in [false, true] {
            let s = render(
                Format::Human { colour },
                Event::Message {
                    from: "x\x1b]0;t\x07".into(),
                    text: "\x1b[2J\u{9b}1m\u{202e}".into(),
                },
            );
            let peer_part = s.split_once('<').unwrap().1;
            let stripped = peer_part.replace(RESET, "");
            assert!(!stripped.contains('\x1b'), "{s:?}");
            assert!(!s.contains('\u{9b}') && !s.contains('\u{202e}') && !s.contains('\x07'));
        }
    }

    #[test]
    fn json_events_are_one_object_per_line_with_exact_text() {
        let text = "tab\there \x1b[31m \"quoted\" ação";
        let s = render(Format::Json, msg(text));
        assert_eq!(s.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["event"], "message");
        assert_eq!(v["from"], "bob");
        assert_eq!(v["text"], text);
        let ts = v["ts"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok());
        assert!(ts.ends_with('Z') && ts.len() == "2026-01-01T00:00:00.000Z".len());

        let s = render(
            Format::Json,
            Event::Leave {
                nick: "bob".into(),
                addr: Some("127.0.0.1:1".into()),
                reason: None,
            },
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["event"], "leave");
        assert_eq!(v["addr"], "127.0.0.1:1");
        assert!(v.get("reason").is_none());

        let s = render(
            Format::Json,
            Event::Join {
                nick: "far".into(),
                addr: None,
                unencrypted: false,
            },
        );
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["event"], "join");
        assert!(
            v.get("addr").is_none(),
            "an unknown address is left out: {s}"
        );
    }
}
