//! Private groups (issue 13): nodes given the same secret (`PEERCHAT_SECRET`) talk over Noise
//! links, on loopback and across a LAN of namespaces; a node with another secret or none, and a
//! guest, are refused; a relay between two nodes reads nothing of the chat, and a record it
//! changes, replays or reorders closes that link alone (the peers re-dial); a member relaying a
//! DM shows and logs none of it.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;

use crate::relay::{Relay, Tamper};
use crate::util::{self, bin, links, wait_until, Node, Raw};

const SECRET: &str = "correct horse battery staple";
const CANNOT_JOIN: &str = "cannot join: wrong secret, or not a private group";
const PRIVATE: &str =
    "peerchat: this is a private group; guests are not allowed (the host may use --allow-guests)";

/// `peerchat ARGS` with `secret` in `PEERCHAT_SECRET` (none: the variable removed).
fn spawn(secret: Option<&str>, args: &[&str]) -> Node {
    with_secret(Command::new(bin()).args(args), secret)
}

/// `peerchat ARGS` inside network namespace `ns`, with `secret` as [`spawn`] has it.
fn spawn_in(ns: &str, secret: Option<&str>, args: &[&str]) -> Node {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, bin()]).args(args);
    with_secret(&mut cmd, secret)
}

fn with_secret(cmd: &mut Command, secret: Option<&str>) -> Node {
    match secret {
        Some(s) => cmd.env("PEERCHAT_SECRET", s),
        None => cmd.env_remove("PEERCHAT_SECRET"),
    };
    Node::spawn_with(cmd)
}

/// A JSON node of the group `secret` listening on a loopback port; it and the port.
fn listener(nick: &str, secret: Option<&str>, extra: &[&str]) -> (Node, u16) {
    let mut args = vec!["-l", "127.0.0.1:0", "--json", "--nick", nick];
    args.extend_from_slice(extra);
    let mut node = spawn(secret, &args);
    let ev = node.wait_event(|v| {
        v["event"] == "info" && v["text"].as_str().unwrap_or("").starts_with("listening on")
    });
    let port = ev["text"]
        .as_str()
        .and_then(|t| t.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("port in the listening line");
    (node, port)
}

/// A JSON node of the group `secret` dialling `port` on loopback.
fn client(nick: &str, port: u16, secret: Option<&str>) -> Node {
    let addr = format!("127.0.0.1:{port}");
    spawn(secret, &[&addr, "--json", "--nick", nick])
}

/// True for an error event whose text says [`CANNOT_JOIN`].
fn cannot_join(v: &serde_json::Value) -> bool {
    v["event"] == "error" && v["text"].as_str().unwrap_or("").contains(CANNOT_JOIN)
}

#[test]
fn two_and_three_nodes_with_the_same_secret_chat() {
    let (mut hub, port) = listener("hub", Some(SECRET), &[]);
    let mut ann = client("ann", port, Some(SECRET));
    hub.wait_join("ann");
    ann.wait_join("hub");
    ann.send("hello over noise");
    hub.wait_message("ann", "hello over noise");
    hub.send("and back");
    ann.wait_message("hub", "and back");

    let mut bob = client("bob", port, Some(SECRET));
    bob.wait_join("hub");
    bob.wait_join("ann");
    ann.wait_join("bob");
    bob.send("three of us");
    ann.wait_message("bob", "three of us");
    hub.wait_message("bob", "three of us");
}

#[test]
fn a_wrong_secret_and_no_secret_are_refused_with_one_line_on_both_sides() {
    let (mut hub, port) = listener("hub", Some(SECRET), &[]);
    for secret in [Some("another secret"), None] {
        let mut stranger = client("eve", port, secret);
        assert_eq!(stranger.wait_exit().code(), Some(1), "{secret:?}");
        let said = stranger.wait_stderr("the refusal", |l| l.contains(CANNOT_JOIN));
        assert!(said.starts_with("peerchat: cannot connect to"), "{said}");
        hub.wait_event(cannot_join);
    }
    // Nothing of the chat reached the strangers, and the hub saw nobody join.
    assert!(!hub.events().iter().any(|v| v["event"] == "join"));
}

#[test]
fn a_guest_is_refused_with_a_readable_line_unless_guests_are_allowed() {
    let (_hub, port) = listener("hub", Some(SECRET), &[]);
    let mut guest = Raw::connect(port);
    guest.send(b"hi\n");
    assert_eq!(guest.line().as_deref(), Some(PRIVATE));
    assert_eq!(guest.line(), None, "closed after the line");

    let (mut open_hub, open_port) = listener("hub", Some(SECRET), &["--allow-guests"]);
    let mut guest = Raw::joined(&mut open_hub, open_port, "~guest-1", "hi there");
    open_hub.wait_event(|v| {
        v["event"] == "info"
            && v["text"]
                .as_str()
                .unwrap_or("")
                .ends_with("is an unencrypted guest (--allow-guests)")
    });
    open_hub.send("welcome");
    guest.wait_line(|l| l.contains("welcome"));
    // Its join says so, on its host and on every member of the group.
    let unencrypted_guest = |v: &serde_json::Value| v["event"] == "join" && v["nick"] == "~guest-1";
    let join = open_hub.wait_event(unencrypted_guest);
    assert_eq!(join["unencrypted"], true, "{join}");
    // Nodes of the group still come in encrypted beside it.
    let mut ann = client("ann", open_port, Some(SECRET));
    let hub_join = ann.wait_join("hub");
    assert!(hub_join.get("unencrypted").is_none(), "{hub_join}");
    let join = ann.wait_event(unencrypted_guest);
    assert_eq!(join["unencrypted"], true, "{join}");
    ann.send("from a member");
    guest.wait_line(|l| l.contains("from a member"));
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn a_relay_between_two_nodes_reads_none_of_the_chat() {
    let (mut hub, port) = listener("hubnick", Some(SECRET), &[]);
    let relay = Relay::new(port);
    let mut ann = client("annnick", relay.port, Some(SECRET));
    hub.wait_join("annnick");
    ann.wait_join("hubnick");
    ann.send("the-first-secret-words");
    hub.wait_message("annnick", "the-first-secret-words");
    hub.send("/msg annnick the-second-secret-words");
    ann.wait_event(|v| v["event"] == "dm" && v["text"] == "the-second-secret-words");
    hub.send("in the open room");
    ann.wait_message("hubnick", "in the open room");
    reads_none_of(&relay, &["annnick", "hubnick", "secret-words", "open room"]);
}

/// What `relay` recorded holds none of `words` (the chat's texts and nicks), nor how a hello,
/// a node id or a key are written on a link in plain text; and it did see the chat go by.
fn reads_none_of(relay: &Relay, words: &[&str]) {
    let seen = relay.recorded();
    assert!(
        seen.len() > 500,
        "the relay saw the chat: {} bytes",
        seen.len()
    );
    let plain = ["peerchat", "hello", "node=", "key="];
    for needle in words.iter().chain(&plain) {
        assert!(!contains(&seen, needle), "{needle:?} crossed the relay");
    }
}

#[test]
fn a_byte_flipped_by_a_relay_closes_that_link_only() {
    let (mut hub, port) = listener("hub", Some(SECRET), &[]);
    let relay = Relay::new(port);
    let mut ann = client("ann", relay.port, Some(SECRET));
    let mut bob = client("bob", port, Some(SECRET));
    hub.wait_join("ann");
    hub.wait_join("bob");
    ann.wait_join("bob");
    bob.wait_join("ann");
    relay.tamper(Tamper::Flip);
    ann.send("this one is changed on the way");
    let leave = hub.wait_leave("ann");
    assert!(
        leave["reason"]
            .as_str()
            .unwrap_or("")
            .contains("encrypted record failed"),
        "{leave}"
    );
    assert!(
        !hub.events()
            .iter()
            .any(|v| v["event"] == "message" && v["from"] == "ann"),
        "a changed record was read"
    );
    // The other link is untouched.
    bob.send("still here");
    hub.wait_message("bob", "still here");
    hub.send("and the hub too");
    bob.wait_message("hub", "and the hub too");
}

#[test]
fn a_node_of_a_group_dialling_a_plain_chat_says_it_cannot_join() {
    let (_plain, port) = listener("plain", None, &[]);
    let mut member = client("ann", port, Some(SECRET));
    assert_eq!(member.wait_exit().code(), Some(1));
    member.wait_stderr("the refusal", |l| l.contains(CANNOT_JOIN));
}

#[test]
fn a_silent_connection_to_a_group_is_closed_when_a_dial_would_have_failed() {
    let (_hub, port) = listener("hub", Some(SECRET), &[]);
    let mut silent = Raw::connect(port);
    // Nothing sent: nothing comes back, and the connection is closed (10 s, the connect
    // timeout; the raw read waits up to its deadline, 15 s).
    assert_eq!(silent.line(), None);
}

/// hub listens; ann listens too and dials the hub through a relay; bob listens and dials the hub
/// directly. Peer exchange joins ann and bob directly, so the relayed link is the only one
/// between ann and the hub. The relay then does `how` to the next record from ann to the hub:
/// that link must close with the reason on the hub's side, the hub's and ann's links to bob
/// stay up and carry the chat, and the hub and ann re-dial and chat again without bob.
fn a_record_tampered_with_on_the_way_closes_that_link_only(how: Tamper) {
    let (mut hub, hub_port) = listener("hub", Some(SECRET), &[]);
    let relay = Relay::new(hub_port);
    let via_relay = format!("127.0.0.1:{}", relay.port);
    let (mut ann, _) = listener("ann", Some(SECRET), &[&via_relay]);
    let (mut bob, _) = listener("bob", Some(SECRET), &[&format!("127.0.0.1:{hub_port}")]);
    for (node, others) in [
        (&mut hub, ["ann", "bob"]),
        (&mut ann, ["hub", "bob"]),
        (&mut bob, ["hub", "ann"]),
    ] {
        for nick in others {
            node.wait_join(nick);
        }
    }
    let pid = |n: &Node| n.child.id();
    let (h, a, b) = (pid(&hub), pid(&ann), pid(&bob));
    wait_until("a direct link between ann and bob", || {
        match links(a, b).len() {
            0 => Err("none yet".into()),
            _ => Ok(()),
        }
    });
    let others = (links(h, b), links(a, b));
    assert_eq!(
        links(h, a),
        [],
        "the hub and ann are joined only through the relay"
    );
    assert_eq!(relay.ended(), 0);

    relay.tamper(how);
    ann.send("sent-while-tampered-one");
    if how == Tamper::Reorder {
        // The next record must overtake the one held back (a keepalive may have been it).
        wait_until("a record held back", || match relay.holding() {
            true => Ok(()),
            false => Err("nothing held yet".into()),
        });
        ann.send("sent-while-tampered-two");
    }
    let closing = hub.wait_stderr("the hub closing the link", |l| {
        l.contains("closing") && l.contains("an encrypted record failed")
    });
    assert!(relay.tampered(), "{how:?} was not done, yet: {closing}");
    wait_until("the relayed connection ended both ways", || {
        match relay.ended() {
            0 => Err("still up".into()),
            _ => Ok(()),
        }
    });

    // The other links are the same connections as before, and carry the chat.
    bob.send("bob-still-here");
    hub.wait_message("bob", "bob-still-here");
    ann.wait_message("bob", "bob-still-here");
    hub.send("the-hub-too");
    bob.wait_message("hub", "the-hub-too");
    assert_eq!(
        (links(h, b), links(a, b)),
        others,
        "another link was closed"
    );

    // The hub and ann dial each other again (directly: they know where the other listens).
    wait_until("the hub and ann linked again", || match links(h, a).len() {
        0 => Err(format!("the relay saw {} connections end", relay.ended())),
        _ => Ok(()),
    });
    // Without bob, only the new link can carry what they say.
    bob.child.kill().expect("kill bob");
    bob.child.wait().expect("reap bob");
    ann.send("after-the-re-dial");
    hub.wait_message("ann", "after-the-re-dial");
    hub.send("welcome-back");
    ann.wait_message("hub", "welcome-back");
}

#[test]
fn a_record_replayed_by_a_relay_closes_that_link_only_and_the_peers_re_dial() {
    a_record_tampered_with_on_the_way_closes_that_link_only(Tamper::Replay);
}

#[test]
fn records_reordered_by_a_relay_close_that_link_only_and_the_peers_re_dial() {
    a_record_tampered_with_on_the_way_closes_that_link_only(Tamper::Reorder);
}

#[test]
fn a_private_group_on_a_lan_chats_refuses_a_wrong_secret_and_shows_the_path_nothing() {
    // Three hosts on one bridged segment: ana listens on host 0; bia on host 1 reaches her
    // through a relay on host 2 that records the bytes; eve on host 2 has another secret.
    let Some(lan) = util::bridge_or_skip(3) else {
        return;
    };
    let ip = |i: usize| lan.ips[i].parse::<Ipv4Addr>().expect("a host's address");
    let mut ana = spawn_in(
        &lan.hosts[0],
        Some(SECRET),
        &["-l", "--json", "--nick", "ana-on-lan"],
    );
    ana.wait_event(|v| v["event"] == "info" && v["text"] == "listening on 0.0.0.0:5000");
    let relay = Relay::in_namespace(&lan.hosts[2], ip(2), SocketAddrV4::new(ip(0), 5000));
    let via_relay = format!("{}:{}", lan.ips[2], relay.port);
    let mut bia = spawn_in(
        &lan.hosts[1],
        Some(SECRET),
        &[&via_relay, "--json", "--nick", "bia-on-lan"],
    );
    let join = ana.wait_join("bia-on-lan");
    let from = join["addr"].as_str().unwrap_or_default();
    assert!(from.starts_with(&format!("{}:", lan.ips[2])), "{join}");
    bia.wait_join("ana-on-lan");
    bia.send("oi-ana-across-the-lan");
    ana.wait_message("bia-on-lan", "oi-ana-across-the-lan");
    ana.send("oi-bia-across-the-lan");
    bia.wait_message("ana-on-lan", "oi-bia-across-the-lan");
    reads_none_of(&relay, &["on-lan", "across-the-lan"]);

    let ana_addr = format!("{}:5000", lan.ips[0]);
    let mut eve = spawn_in(
        &lan.hosts[2],
        Some("another secret"),
        &[&ana_addr, "--json", "--nick", "eve"],
    );
    assert_eq!(eve.wait_exit().code(), Some(1));
    eve.wait_stderr("the refusal", |l| l.contains(CANNOT_JOIN));
    ana.wait_event(cannot_join);
    assert!(!eve.history.iter().any(|l| l.contains("on-lan")));
    // The members go on.
    bia.send("still-here");
    ana.wait_message("bia-on-lan", "still-here");
}

#[test]
fn a_dm_through_a_relaying_member_is_unreadable_there() {
    crate::mesh::a_dm_through_a_relaying_node_shows_no_text_there(Some(SECRET));
}
