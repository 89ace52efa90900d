//! Private groups (issue 13): nodes given the same secret (`PEERCHAT_SECRET`) talk over Noise
//! links; a node with another secret or none, and a guest, are refused; a relay between two
//! nodes reads nothing of the chat, and one byte changed on the way closes that link alone.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::util::{bin, Node, Raw};

const SECRET: &str = "correct horse battery staple";
const CANNOT_JOIN: &str = "cannot join: wrong secret, or not a private group";
const PRIVATE: &str =
    "peerchat: this is a private group; guests are not allowed (the host may use --allow-guests)";

/// `peerchat ARGS` with `secret` in `PEERCHAT_SECRET` (none: the variable removed).
fn spawn(secret: Option<&str>, args: &[&str]) -> Node {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    match secret {
        Some(s) => cmd.env("PEERCHAT_SECRET", s),
        None => cmd.env_remove("PEERCHAT_SECRET"),
    };
    Node::spawn_with(&mut cmd)
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

/// A TCP forwarder on loopback between a node and `target`: records every byte each way, and
/// flips one byte of the next chunk going to `target` once `flip` is set.
struct Relay {
    port: u16,
    seen: Arc<Mutex<Vec<u8>>>,
    flip: Arc<AtomicBool>,
}

impl Relay {
    fn new(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay bind");
        let port = listener.local_addr().expect("relay addr").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flip = Arc::new(AtomicBool::new(false));
        let (seen2, flip2) = (seen.clone(), flip.clone());
        thread::spawn(move || {
            // Every connection the node makes (a re-dial too) is relayed.
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { return };
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                let pipes = [
                    (
                        inbound.try_clone(),
                        outbound.try_clone(),
                        Some(flip2.clone()),
                    ),
                    (outbound.try_clone(), inbound.try_clone(), None),
                ];
                for (from, to, flip) in pipes {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        return;
                    };
                    let seen = seen2.clone();
                    thread::spawn(move || copy(from, to, &seen, flip.as_deref()));
                }
            }
        });
        Relay { port, seen, flip }
    }

    fn recorded(&self) -> Vec<u8> {
        self.seen.lock().expect("relay record").clone()
    }
}

/// Copies `from` to `to`, recording, until either end closes.
fn copy(mut from: TcpStream, mut to: TcpStream, seen: &Mutex<Vec<u8>>, flip: Option<&AtomicBool>) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Ok(mut s) = seen.lock() {
            s.extend_from_slice(&buf[..n]);
        }
        if flip.is_some_and(|f| f.swap(false, Ordering::SeqCst)) {
            buf[n - 1] ^= 0x01;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
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
    let seen = relay.recorded();
    assert!(
        seen.len() > 500,
        "the relay saw the chat: {} bytes",
        seen.len()
    );
    for needle in [
        "annnick",
        "hubnick",
        "secret-words",
        "open room",
        // How a hello, a node id and a key are written on a link in plain text.
        "peerchat",
        "hello",
        "node=",
        "key=",
    ] {
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
    relay.flip.store(true, Ordering::SeqCst);
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
