//! History: the last messages of the chat, kept as the signed bundles they came in (so that
//! whoever gets them can check who said them), handed to every peer whose link comes up (a
//! node that joins, or a part of the chat that was cut off and is back) and to guests when they
//! arrive. Also what this node said while no peer was connected, held until one is.
//!
//! `History` owns the kept bundles and the held ones; the `impl Chat` steps below hand them
//! out and take what a peer hands over (`HIST`): only its messages and actions, each once
//! (the seen set and the floors decide, as for live frames), shown marked as history or late,
//! and passed on to the other peers as history again.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Instant;

use log::debug;

use super::flood::RateLimit;
use super::neighbours::Incoming;
use super::{Chat, ConnId, KeyCheck};
use crate::event::{Event, Speech};
use crate::protocol::{
    self, Frame, HistHead, Kept, MemberId, NodeId, Signed, GUEST_MARK, MAX_BUNDLE_BYTES,
    MAX_BUNDLE_FRAMES,
};

/// The most bytes of bundles kept as history, whatever `--history` says: a bundle bigger than
/// this alone is not kept.
pub(super) const HISTORY_BYTES: usize = 256 * 1024;

/// The most bundles (and bytes) said while nobody was connected that are held to send later,
/// and the most messages (and bytes) said while no peer could read them that wait to be signed:
/// past that, the oldest go.
pub(super) const HELD_MAX: usize = 1000;
pub(super) const HELD_BYTES: usize = 256 * 1024;

/// The messages and actions of a bundle from counter `from` on: what history shows of it.
fn speech(bundle: &Signed, from: u64) -> impl Iterator<Item = &Frame> + Clone {
    bundle.frames.iter().filter(move |f| {
        matches!(f, Frame::Msg { .. } | Frame::Me { .. }) && f.id().is_some_and(|id| id.seq >= from)
    })
}

/// How many messages and actions history shows of `past`.
fn said(past: &Kept) -> usize {
    speech(&past.bundle, past.head.from).count()
}

/// The kept bundles, oldest first, and those held until a peer connects.
#[derive(Debug)]
pub(super) struct History {
    /// The most messages kept (`--history`).
    cap: usize,
    kept: VecDeque<Rc<Kept>>,
    /// Messages and bytes in `kept`.
    said: usize,
    bytes: usize,
    held: VecDeque<Rc<Kept>>,
    held_bytes: usize,
    /// What this node said while no peer could read it (only guests, or nobody), with when:
    /// not signed until a peer comes, as a signature nobody checks is wasted (a hub of
    /// guests would sign every burst).
    loose: VecDeque<(u64, Frame)>,
    loose_bytes: usize,
}

impl History {
    pub(super) fn new(cap: usize) -> History {
        History {
            cap,
            kept: VecDeque::new(),
            said: 0,
            bytes: 0,
            held: VecDeque::new(),
            held_bytes: 0,
            loose: VecDeque::new(),
            loose_bytes: 0,
        }
    }

    /// Notes `f`, said at `at` while no peer could read it, unsigned for now.
    pub(super) fn loosen(&mut self, at: u64, f: Frame) {
        self.loose_bytes += f.wire_len();
        self.loose.push_back((at, f));
        while self.loose.len() > HELD_MAX || self.loose_bytes > HELD_BYTES {
            let Some((_, old)) = self.loose.pop_front() else {
                break;
            };
            self.loose_bytes -= old.wire_len();
        }
    }

    /// How many of member `me`'s messages and actions are loose: said while no peer could
    /// read them, and not handed to one since.
    pub(super) fn loose_of(&self, me: MemberId) -> usize {
        let mine = |f: &Frame| matches!(f, Frame::Msg { from, .. } | Frame::Me { from, .. } if *from == me);
        self.loose.iter().filter(|(_, f)| mine(f)).count()
    }

    /// The loose frames, to be signed now, in groups of one time each (a bundle has one) and
    /// within a bundle's caps.
    pub(super) fn take_loose(&mut self) -> Vec<(u64, Vec<Frame>)> {
        self.loose_bytes = 0;
        let mut groups: Vec<(u64, Vec<Frame>, usize)> = Vec::new();
        for (at, f) in std::mem::take(&mut self.loose) {
            let size = f.wire_len();
            match groups.last_mut() {
                Some((t, frames, bytes))
                    if *t == at
                        && frames.len() < MAX_BUNDLE_FRAMES
                        && *bytes + size <= MAX_BUNDLE_BYTES =>
                {
                    frames.push(f);
                    *bytes += size;
                }
                _ => groups.push((at, vec![f], size)),
            }
        }
        groups.into_iter().map(|(at, f, _)| (at, f)).collect()
    }

    /// Keeps `past` (a bundle with at least one message) as the newest, then forgets the
    /// oldest while the rest still hold `cap` messages or the bytes are over
    /// [`HISTORY_BYTES`]; the oldest left keeps only its messages among the last `cap` (its
    /// head's `from` moves on: the bundle stays whole, as it was signed).
    pub(super) fn keep(&mut self, past: Rc<Kept>) {
        let (n, size) = (said(&past), past.bundle.wire.len());
        if self.cap == 0 || n == 0 || size > HISTORY_BYTES {
            return;
        }
        self.kept.push_back(past);
        self.said += n;
        self.bytes += size;
        while let Some(front) = self.kept.front() {
            let (n, size) = (said(front), front.bundle.wire.len());
            if self.said - n < self.cap && self.bytes <= HISTORY_BYTES {
                break;
            }
            self.said -= n;
            self.bytes -= size;
            self.kept.pop_front();
        }
        let over = self.said.saturating_sub(self.cap);
        if let Some(front) = self.kept.front_mut().filter(|_| over > 0) {
            let first = speech(&front.bundle, front.head.from)
                .filter_map(Frame::id)
                .nth(over);
            if let Some(first) = first {
                let mut trimmed = (**front).clone();
                trimmed.head.from = first.seq;
                *front = Rc::new(trimmed);
                self.said -= over;
            }
        }
    }

    /// Holds `past`, said while no peer was connected, until one is.
    pub(super) fn hold(&mut self, past: Rc<Kept>) {
        self.held_bytes += past.bundle.wire.len();
        self.held.push_back(past);
        while self.held.len() > HELD_MAX || self.held_bytes > HELD_BYTES {
            let Some(old) = self.held.pop_front() else {
                break;
            };
            self.held_bytes -= old.bundle.wire.len();
        }
    }

    /// True while something said is held for the next peer.
    #[cfg(test)]
    pub(super) fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// What a peer whose link came up is handed: the kept bundles and the held ones (which
    /// are handed once), each once, in order (see [`in_order`]).
    pub(super) fn hand_over(&mut self) -> Vec<Rc<Kept>> {
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        let mut all: Vec<Rc<Kept>> = self.kept.iter().cloned().collect();
        for p in held {
            if !all.iter().any(|k| Rc::ptr_eq(k, &p)) {
                all.push(p);
            }
        }
        in_order(all)
    }

    /// The last `n` messages and actions kept or loose, oldest first, each with its time.
    pub(super) fn last_said(&self, n: usize) -> Vec<(u64, Frame)> {
        let mut kept: VecDeque<(u64, Frame)> = VecDeque::new();
        for p in in_order(self.kept.iter().cloned().collect()) {
            let said = speech(&p.bundle, p.head.from);
            kept.extend(said.map(|f| (p.head.at, f.clone())));
        }
        // Merged by time; each side keeps its own order.
        let mut loose = self.loose.iter().cloned().peekable();
        let mut out: Vec<(u64, Frame)> = Vec::new();
        while let Some((at, _)) = kept.front() {
            match loose.next_if(|(t, _)| t < at) {
                Some(l) => out.push(l),
                None => out.extend(kept.pop_front()),
            }
        }
        out.extend(loose);
        let skip = out.len().saturating_sub(n);
        out.drain(..skip);
        out
    }
}

/// How many history messages one peer may hand over: twice the history (at least 200) and
/// what a node may hold while nobody is connected ([`HELD_MAX`]) at once, a history's worth a
/// minute after. An honest peer hands its history when the link comes up, with the lines its
/// user said alone (held beyond the history, passed on by the first peer as one), then passes
/// on what a repair elsewhere brought, at most a history each time.
pub(super) fn budget(history: usize) -> RateLimit {
    let n = history.max(100) as f64;
    RateLimit {
        per_sec: n / 60.0,
        burst: 2.0 * n + HELD_MAX as f64,
    }
}

/// The first counter in a bundle: its place in its origin's order.
fn first_seq(p: &Kept) -> u64 {
    p.bundle
        .frames
        .iter()
        .filter_map(Frame::id)
        .map(|id| id.seq)
        .min()
        .unwrap_or(0)
}

/// `all` by time, except that each origin's bundles stay in their origin's order (by counter)
/// whatever times they carry: a bundle that reached this node after a later one of the same
/// origin (over another path) takes that one's place.
pub(super) fn in_order(mut all: Vec<Rc<Kept>>) -> Vec<Rc<Kept>> {
    all.sort_by_key(|p| p.head.at);
    let mut places: HashMap<NodeId, Vec<usize>> = HashMap::new();
    for (i, p) in all.iter().enumerate() {
        places.entry(p.bundle.node).or_default().push(i);
    }
    let mut out: Vec<Option<Rc<Kept>>> = vec![None; all.len()];
    for slots in places.values() {
        let mut mine: Vec<&Rc<Kept>> = slots.iter().map(|&i| &all[i]).collect();
        mine.sort_by_key(|p| first_seq(p));
        for (&slot, p) in slots.iter().zip(mine) {
            out[slot] = Some(p.clone());
        }
    }
    out.into_iter().flatten().collect()
}

impl Chat {
    /// The wall time at `now` (unix milliseconds), from the one the chat was made with.
    pub(super) fn wall(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.started).as_millis();
        self.cfg
            .wall
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// Keeps `bundle`, checked and new here, as history dated `at`, if it carries a message.
    pub(super) fn keep_history(&mut self, bundle: &Rc<Signed>, at: u64) {
        let Some(key) = self.origins.node_key(bundle.node) else {
            return;
        };
        self.history.keep(Rc::new(Kept {
            head: HistHead { at, from: 0, key },
            bundle: bundle.clone(),
        }));
    }

    /// What this node said, signed now: kept as history, and held for the next peer if no
    /// peer is connected (it is told it waits).
    pub(super) fn keep_own(&mut self, bundle: &Rc<Signed>) {
        let past = Rc::new(Kept {
            head: HistHead {
                at: self.wall(self.clock),
                from: 0,
                key: self.node_key(),
            },
            bundle: bundle.clone(),
        });
        if said(&past) == 0 {
            return;
        }
        self.history.keep(past.clone());
        if !self.neighbours.any_active_peer() {
            self.hold_if_mine(past);
        }
    }

    /// Holds `kept` for the next peer if the local user said something in it: what guests
    /// said while no peer was there is history like the rest (the last N), not held beyond it.
    fn hold_if_mine(&mut self, kept: Rc<Kept>) {
        let me = self.me;
        let mine = speech(&kept.bundle, 0)
            .any(|f| matches!(f, Frame::Msg { from, .. } | Frame::Me { from, .. } if *from == me));
        if mine {
            self.history.hold(kept);
        }
    }

    /// The link to the peer on `conn` is up: it gets the history, and what was held for it.
    /// The first link dates this node's arrival in the chat: what it is handed from before
    /// that is history, what was said after it (while it was cut off) is late.
    pub(super) fn hand_history(&mut self, conn: ConnId) {
        if self.joined.is_none() {
            self.joined = Some(self.wall(self.clock));
        }
        // What was said while no peer could read it is signed now, once: the user's own
        // lines apart from its guests' (in runs, keeping their order), as only the user's are
        // held beyond the history.
        let me = self.me;
        let waited = self.history.loose_of(me);
        let mine = |f: &Frame| matches!(f, Frame::Msg { from, .. } | Frame::Me { from, .. } if *from == me);
        for (at, frames) in self.history.take_loose() {
            let mut runs: Vec<Vec<Frame>> = Vec::new();
            for f in frames {
                match runs.last_mut() {
                    Some(run) if run.first().is_some_and(|g| mine(g) == mine(&f)) => run.push(f),
                    _ => runs.push(vec![f]),
                }
            }
            for part in runs {
                let kept = Rc::new(Kept {
                    head: HistHead {
                        at,
                        from: 0,
                        key: self.node_key(),
                    },
                    bundle: Rc::new(Signed::seal(&self.cfg.key, self.cfg.node, part)),
                });
                self.history.keep(kept.clone());
                self.hold_if_mine(kept);
            }
        }
        for past in self.history.hand_over() {
            self.out.send(conn, Frame::Hist(past));
        }
        // The user was told these wait: now they are on their way.
        if waited > 0 {
            self.out.show(Event::Info(format!(
                "{waited} line(s) said while nobody was connected are sent now"
            )));
        }
    }

    /// Guest `conn` arrived: the last messages kept, as plain lines with their times.
    pub(super) fn hand_guest_history(&mut self, conn: ConnId) {
        let lines: Vec<String> = self
            .history
            .last_said(self.cfg.history)
            .into_iter()
            .map(|(at, f)| self.dated_line(at, &f))
            .collect();
        for line in lines {
            self.out.tell(conn, line);
        }
    }

    /// The line a guest reads for message `f` live (terminal-safe, a guest's `~`), dated `at`.
    fn dated_line(&self, at: u64, f: &Frame) -> String {
        let mut line = Vec::new();
        protocol::encode_guest(f, &mut line);
        let line = String::from_utf8_lossy(&line);
        let time = protocol::clock(at, self.cfg.utc_offset);
        format!("[{time}] {}", line.trim_end())
    }

    /// A whole bundle of history came on `conn` (after its `HIST` head): checked against the
    /// key the head names, which must be its node's; then each message or action not seen
    /// yet is shown, and the bundle kept and handed on to the other peers as history. Its
    /// other frames (joins, leaves, claims) are not taken: they were news when they were sent.
    pub(super) fn history_done(&mut self, conn: ConnId, head: HistHead, b: Incoming) {
        let node = b.head.node;
        if head.key.node() != node {
            return self.drop_conn(conn, "history under another node's key".into());
        }
        let now = self.clock;
        let shown = b.frames.iter().filter(|f| {
            matches!(f, Frame::Msg { .. } | Frame::Me { .. })
                && f.id().is_some_and(|id| id.seq >= head.from)
        });
        // Ours, or nothing new in it: not worth checking.
        self.seen.expire(now);
        let news = shown
            .filter(|f| f.id().is_some_and(|id| !self.seen.old(id, now)))
            .count();
        if node == self.cfg.node || news == 0 {
            return;
        }
        // Within what an honest peer hands over; past it, a peer inventing speakers to fill
        // screens gets nothing shown, kept or passed on (checked before the costly signature).
        let limit = budget(self.cfg.history);
        let within = self
            .neighbours
            .peer_mut(conn)
            .is_some_and(|p| p.history.take(now, limit, news));
        if !within {
            debug!("conn {conn}: history past its budget, dropped");
            return;
        }
        if !protocol::sign::verify_frames(&head.key.key, node, &b.lines, &b.head.sig) {
            return self.drop_conn(conn, format!("bad signature on history from {node:016x}"));
        }
        // A peer's time is shown, never trusted: none later than ours.
        let at = head.at.min(self.wall(now));
        let late = self.joined.is_some_and(|joined| at > joined);
        let signed = Rc::new(Signed::assemble(node, &b.head.sig, b.frames, &b.lines));
        let mut fresh: Option<u64> = None;
        let mut for_guests = Vec::new();
        for frame in &signed.frames {
            let Some(id) = frame.id() else { continue };
            if !matches!(frame, Frame::Msg { .. } | Frame::Me { .. })
                || id.seq < head.from
                || !self.seen.first_time(id, now)
            {
                continue;
            }
            fresh = fresh.or(Some(id.seq));
            if let Some(event) = self.past_event(frame, &head, at, late) {
                self.out.show(event);
            }
            for_guests.push(self.dated_line(at, frame));
        }
        // Our guests read it too, dated, as they read the history when they came.
        for guest in self.neighbours.guest_conns() {
            for line in &for_guests {
                self.out.tell(guest, line.clone());
            }
        }
        let Some(from) = fresh else {
            return;
        };
        // Handed on from the first message that was news here: its peers had the rest from
        // this node already, or from where this node had them.
        let past = Rc::new(Kept {
            head: HistHead { at, from, ..head },
            bundle: signed,
        });
        self.history.keep(past.clone());
        for other in self.neighbours.active_peers() {
            if other != conn {
                self.out.send(other, Frame::Hist(past.clone()));
            }
        }
    }

    /// How a message or action of history is shown: under its member's name here if it is
    /// still in the chat, else under the nick it was said with (warned about if that nick is
    /// remembered with another key).
    fn past_event(&self, frame: &Frame, head: &HistHead, at: u64, late: bool) -> Option<Event> {
        let (from, nick, text, speech) = match frame {
            Frame::Msg {
                from, nick, text, ..
            } => (*from, nick, text, Speech::Say),
            Frame::Me {
                from, nick, text, ..
            } => (*from, nick, text, Speech::Act),
            _ => return None,
        };
        let from = if self.roster.contains(&from) {
            self.roster.shown(from)
        } else {
            self.gone_name(from, nick, head)
        };
        Some(Event::Past(crate::event::Past {
            speech,
            from,
            text: text.clone(),
            at,
            late,
        }))
    }

    /// The name of `member`, no longer (or not yet) in the chat, who said something as `nick`:
    /// with its tag when someone here goes by that nick or one like it (it is not them), and
    /// warned about when the nick is remembered with another key.
    fn gone_name(&self, member: MemberId, nick: &str, head: &HistHead) -> String {
        let mark = if member.guest == 0 { "" } else { GUEST_MARK };
        let mut name = format!("{mark}{nick}");
        // This node's own earlier run (same key, another run) is the user: no tag, even though
        // the nick is in the roster (as the user's).
        let ours = member.guest == 0 && head.key.key == self.cfg.key.verifying_key();
        if !ours && self.roster.holds_any_case(nick) {
            name.push_str(&member.tag());
        }
        let fp = protocol::sign::fingerprint(&head.key.key);
        if member.guest == 0 && matches!(self.cfg.known.check(nick, &fp), KeyCheck::Changed { .. })
        {
            name.push_str(" (key changed!)");
        }
        name
    }
}

#[cfg(test)]
mod tests;
