//! The connection table: adding a connection, telling the chat it opened, and closing it (a
//! last write, what was left undelivered, the chat told, its timers forgotten).
//!
//! Must not decide when to close (the chat, the timers and the writes do) nor read or write
//! beyond the last try at what is queued.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, info, warn};

use super::timers::{self, Timer};
use super::{Entry, Reactor};
use crate::chat::{Link, Origin};
use crate::conn::Phase;
use crate::event::{Event, Role};
use crate::eventlog::Tag;
use crate::fanout::side;
use crate::protocol;

/// Where a connection's role is counted in `Reactor::roles`.
pub(super) fn role_slot(role: Option<Role>) -> usize {
    match role {
        Some(role) => side(role),
        None => 2,
    }
}

impl<W: Write> Reactor<W> {
    /// Adds a connection registered with the poll under `key` (the table's vacant key),
    /// receiving broadcasts from now on; its role is not known yet.
    pub(super) fn insert(&mut self, key: usize, mut entry: Entry) {
        entry.conn.subscribe(self.shared.end());
        self.roles[role_slot(None)] += 1;
        let inserted = self.conns.insert(entry);
        // Events for the poll token must find this connection.
        debug_assert_eq!(inserted, key, "registered under another key");
    }

    /// Takes connection `k` out of the table, the poll and the timers.
    fn remove(&mut self, k: usize) -> Option<Entry> {
        let mut e = self.conns.try_remove(k)?;
        if e.conn.is_connecting() || e.conn.is_handshaking() {
            // A dial that never opened: the chat no longer counts it as a peer to be (the
            // chat knows only connections that opened, so nothing else is forgotten).
            self.chat.handle_closed(k, None);
        }
        let _ = self.poll.registry().deregister(&mut e.stream);
        self.acceptor.someone_left();
        self.roles[role_slot(e.conn.role())] -= 1;
        self.behind.remove(&k);
        timers::forget_conn(&mut self.timers, k);
        Some(e)
    }

    /// Drops a dial of our own that nobody waits for (leaving), without telling the chat.
    pub(super) fn drop_speculative(&mut self, k: usize) {
        self.remove(k);
    }

    pub(super) fn mark_dirty(&mut self, k: usize) {
        if let Some(e) = self.conns.get_mut(k) {
            if !e.dirty {
                e.dirty = true;
                self.dirty.push(k);
            }
        }
    }

    /// A connection is up: send our hello and tell the chat.
    pub(super) fn opened(&mut self, k: usize, addr: SocketAddr, now: Instant) {
        let mut hello = Vec::new();
        protocol::encode(&self.chat.hello(super::setup::random()), &mut hello);
        let sent = String::from_utf8_lossy(&hello[..hello.len() - 1]).into_owned();
        let Some(e) = self.conns.get_mut(k) else {
            return;
        };
        e.conn.queue_first(hello);
        let origin = e.origin;
        let local = e
            .stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        self.mark_dirty(k);
        self.told_nobody = false;
        if self.quit_deadline.is_some() {
            // A dial that completes while leaving still gets the full grace to deliver.
            self.extend_quit_grace(now);
        }
        let link = Link {
            addr,
            local,
            origin,
        };
        self.chat.handle_opened(k, link, sent, now);
    }

    /// `k`'s private-group link opened (or, accepted, a guest was let in): from here on it is
    /// a connection like any other, and the chat is told.
    pub(super) fn link_opened(&mut self, k: usize, now: Instant) {
        let Some(e) = self.conns.get(k) else {
            return;
        };
        self.timers.cancel(&Timer::Connect(k));
        let plain_guest = e.conn.is_plain_guest();
        let addr = e
            .stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        if plain_guest {
            // Everything to and from it crosses the network readable: the user is told.
            let line = format!("{addr} is an unencrypted guest (--allow-guests)");
            info!("{line}");
            self.record(Tag::Info, &line);
            self.show(&Event::Info(line));
        } else {
            debug!("{addr}: encrypted link open");
        }
        self.opened(k, addr, now);
    }

    /// `k`'s private-group link failed before it opened (wrong secret, no secret, no handshake
    /// in time): closed, and said in one line. A dial fails with `why` as any dial does; an
    /// accepted connection, which the chat never knew, is shown here.
    pub(super) fn handshake_failed(&mut self, k: usize, why: String, now: Instant) {
        let Some(e) = self.conns.get(k) else {
            return;
        };
        if e.origin == Origin::Accepted {
            let line = format!("{}: {why}", e.conn.addr());
            self.record(Tag::Info, &line);
            self.show(&Event::Error(line));
        }
        self.close(k, Some(why), now);
    }

    /// A guest (text) where guests are not let in, or a peerchat node without the secret
    /// (`plain_node`, refused even with `--allow-guests`: a node of the group never talks to a
    /// node in plain text): told so in one line and closed. A guest is not shown (as a full
    /// chat's refusals are not); a node is, with the line its user sees too.
    pub(super) fn refuse_guest(&mut self, k: usize, plain_node: bool, now: Instant) {
        let Some(e) = self.conns.get_mut(k) else {
            return;
        };
        info!(
            "refused {}: not encrypted, in a private group",
            e.conn.addr()
        );
        super::accept::refuse_with(&mut e.stream, &format!("{}\n", protocol::PRIVATE));
        if plain_node {
            let line = format!("{}: {}", e.conn.addr(), protocol::CANNOT_JOIN);
            self.record(Tag::Info, &line);
            self.show(&Event::Error(line));
        }
        self.close(k, None, now);
    }

    /// Closes `k` for something it did (too slow, a bad frame, an unfinished hello), saying so
    /// on stderr (a hub's operator wants to know); the chat shows its leave with `reason`.
    pub(super) fn close_warning(&mut self, k: usize, reason: String, now: Instant) {
        if let Some(e) = self.conns.get(k) {
            warn!("closing {}: {reason}", e.conn.addr());
        }
        self.close(k, Some(reason), now);
    }

    /// Drops connection `k` and tells the chat (or, for a dial that never connected, whoever
    /// asked for it).
    pub(super) fn close(&mut self, k: usize, reason: Option<String>, now: Instant) {
        let backlog = match self.conns.get_mut(k) {
            Some(e) => {
                // A last try at what is queued for it (why it is being closed, say): the
                // socket may well take it.
                let c = &mut e.conn;
                if *c.phase() == Phase::Open && c.role().is_some() && !c.is_blocked() {
                    let _ = c.flush_to(&mut e.stream, &self.shared);
                }
                c.backlog(&self.shared)
            }
            None => 0,
        };
        let Some(e) = self.remove(k) else {
            return;
        };
        let why = reason.as_deref().unwrap_or("closed");
        info!(
            "closed {}{}",
            e.conn.addr(),
            reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        let last_chance = self.chat.is_quitting() || (self.nothing_left() && self.gate.is_open());
        let unsent = backlog > 0 && !e.conn.is_shut();
        if last_chance && !e.is_speculative() && !self.redial.is_trial(&e) && unsent {
            warn!("could not deliver everything to {}: {why}", e.conn.addr());
            self.undelivered += 1;
        }
        if e.conn.is_handshaking() && e.origin == Origin::Accepted {
            // The chat never knew it (see `link_opened`); `handshake_failed` said why.
            return;
        }
        if e.conn.is_connecting() || e.conn.is_handshaking() {
            if let Origin::Auto(addr) = e.origin {
                debug!("cannot connect to {addr}: {why}");
                return self.chat.handle_dial_failed(addr, now);
            }
            let label = e.conn.addr().to_string();
            return self.dial_failed(super::DialError::Connect {
                label,
                why: why.to_string(),
            });
        }
        self.chat.handle_closed(k, reason);
    }
}
