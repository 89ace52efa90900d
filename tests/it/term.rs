//! The interactive terminal front end as a person sees it: peerchat runs on a real pty (see
//! `pty`) and each test asserts on the screen of a terminal model, never on escape codes. The
//! other peers are piped JSON nodes or raw TCP guests on loopback.
//!
//! Must not test the key decoder or the editor as pure code (their unit tests do that).

use crate::pty::{ScreenExt, Spec, Term};
use crate::util::Node;

/// `TERM=dumb` on the same pty.
fn dumb() -> Spec<'static> {
    Spec {
        term: Some("dumb"),
        ..Spec::default()
    }
}

#[test]
fn dumb_terminal_on_a_pty_shows_peer_lines_as_today() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let addr = format!("127.0.0.1:{port}");
    let mut t = Term::start_with(&dumb(), &[&addr, "--nick", "bia"]);
    hub.wait_join("bia");
    hub.send("hello from the hub");
    t.wait_screen("the hub's line", |s| {
        s.all_rows()
            .iter()
            .any(|r| r.len() > 9 && &r[8..] == " <hub> hello from the hub")
    });
    // Line mode: what is typed is echoed by the terminal itself and sent on Enter.
    t.type_str("oi\r");
    hub.wait_message("bia", "oi");
    assert!(
        t.termios_is_cooked(),
        "line mode leaves the terminal cooked"
    );
}

#[test]
fn dumb_terminal_ctrl_z_stops_and_sigcont_resumes_and_ctrl_c_ends() {
    let (mut hub, port) = Node::listener("hub", &[]);
    let addr = format!("127.0.0.1:{port}");
    let mut t = Term::start_with(&dumb(), &[&addr, "--nick", "bia"]);
    hub.wait_join("bia");
    // The pty is peerchat's controlling terminal, its job in the foreground: the terminal's
    // own Ctrl-Z stops it, as in a shell.
    t.send(b"\x1a");
    t.wait_state('T');
    t.signal(libc::SIGCONT);
    t.type_str("back\r");
    hub.wait_message("bia", "back");
    t.send(b"\x03");
    hub.wait_leave("bia");
    assert_eq!(t.wait_exit().code(), Some(130), "{}", t.framed());
}
