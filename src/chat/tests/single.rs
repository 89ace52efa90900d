//! Single chats for the scenario tests: ready-made ones (a mesh node after its first scan, a
//! node with a guest) and readers of the actions a chat queued.
//!
//! Test support only, beside the in-memory network (`net.rs`), which re-exports it.

use super::net::*;

/// A mesh node of 5000-5001 whose first scan dialled 5001, and the link of that dial.
pub(super) fn first_scan() -> (Chat, Instant, SocketAddr, Link) {
    let (mut chat, now) = mesh_chat(5000, 5000..=5001, DEFAULT_MAX_PEERS);
    let other = SocketAddr::from(([127, 0, 0, 1], 5001));
    chat.handle_tick(now);
    assert_eq!(drain(&mut chat), vec![Action::Dial(other)]);
    let link = Link {
        addr: other,
        local: SocketAddr::from(([127, 0, 0, 1], 40000)),
        origin: Origin::Auto(other),
    };
    (chat, now, other, link)
}

pub(super) fn guest_chat() -> (Chat, Instant) {
    let now = Instant::now();
    let mut chat = Chat::new(solo("hub", Some(5000)), now);
    open(
        &mut chat,
        7,
        accepted("127.0.0.1:4000".parse().unwrap()),
        now,
    );
    open(
        &mut chat,
        8,
        accepted("127.0.0.1:4001".parse().unwrap()),
        now,
    );
    (chat, now)
}

/// A mesh node listening on `listen` of 127.0.0.1's `ports`.
pub(super) fn mesh_chat(
    listen: u16,
    ports: RangeInclusive<u16>,
    max_peers: usize,
) -> (Chat, Instant) {
    let now = Instant::now();
    let mut cfg = solo("me", Some(listen));
    cfg.max_peers = max_peers;
    cfg.mesh = Some(Mesh {
        host: [127, 0, 0, 1].into(),
        ports,
    });
    (Chat::new(cfg, now), now)
}

/// True if `actions` record a line as sent.
pub(super) fn logs_sent(actions: &[Action]) -> bool {
    actions
        .iter()
        .any(|a| matches!(a, Action::Show(Event::Sent { .. })))
}

pub(super) fn drain(chat: &mut Chat) -> Vec<Action> {
    std::iter::from_fn(|| chat.poll_action()).collect()
}

/// Counts what a guest's lines turned into: messages sent on, and what it was told.
pub(super) fn sent_and_told(actions: &[Action]) -> (usize, Vec<String>) {
    let sent = actions
        .iter()
        .filter(|a| matches!(a, Action::Broadcast { frame, .. } if matches!(**frame, Frame::Msg { .. })))
        .count();
    let told = actions
        .iter()
        .filter_map(|a| match a {
            Action::Tell { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    (sent, told)
}
