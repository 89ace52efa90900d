//! Typed commands as the chat carries them out.

use super::net::*;

#[test]
fn nothing_is_logged_as_sent_when_nobody_is_connected() {
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    chat.handle_input("into the void", now);
    assert!(!logs_sent(&drain(&mut chat)));
}

#[test]
fn leaving_with_lines_that_waited_for_a_peer_says_they_were_not_sent() {
    let unsent = |actions: &[Action]| {
        actions.iter().any(|a| {
            matches!(a, Action::Show(Event::Info(t)) if t.starts_with("2 line(s) said while no peer"))
        })
    };
    let now = Instant::now();
    let mut chat = Chat::new(solo("me", Some(5000)), now);
    chat.handle_input("into the void", now);
    chat.handle_input("/me shrugs", now);
    chat.handle_input_end();
    let actions = drain(&mut chat);
    assert!(unsent(&actions), "{actions:?}");
    // Handed to a peer that came: nothing is left unsent.
    let mut net = Net::new(2);
    net.say(0, "into the void");
    net.say(0, "/me shrugs");
    net.link(0, 1);
    net.nodes[0].handle_input_end();
    let actions = drain(&mut net.nodes[0]);
    assert!(!unsent(&actions), "{actions:?}");
}

/// True if `actions` hold a signed bundle of this node's with a message and its goodbye.
fn signs_speech_and_goodbye(actions: &[Action]) -> bool {
    let signed: Vec<&Frame> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Broadcast { frame, .. } => match &**frame {
                Frame::Signed(b) => Some(b.frames.iter()),
                _ => None,
            },
            _ => None,
        })
        .flatten()
        .collect();
    signed.iter().any(|f| matches!(f, Frame::Msg { .. }))
        && signed.iter().any(|f| matches!(f, Frame::Leave { .. }))
}

#[test]
fn what_is_typed_while_a_dial_connects_is_signed_for_the_peer_it_may_reach() {
    let now = Instant::now();
    // A dial the user asked for is under way: the caller holds the broadcasts for it, so the
    // typed line and the goodbye are signed for the peer it may prove to be, and shown sent.
    let mut chat = Chat::new(solo("me", None), now);
    chat.handle_dialling(3);
    chat.handle_input("typed early", now);
    chat.handle_input_end();
    let actions = drain(&mut chat);
    assert!(logs_sent(&actions));
    assert!(signs_speech_and_goodbye(&actions), "{actions:?}");
    // The dial failed: nobody may read what is said now, so nothing is signed for peers.
    let mut chat = Chat::new(solo("me", None), now);
    chat.handle_dialling(3);
    chat.handle_closed(3, None);
    chat.handle_input("too late", now);
    chat.handle_input_end();
    let actions = drain(&mut chat);
    assert!(!logs_sent(&actions));
    assert!(!signs_speech_and_goodbye(&actions), "{actions:?}");
}

#[test]
fn nick_changes_are_announced_and_checked() {
    let mut net = chain(3);
    net.say(0, "/nick ana");
    for node in [1, 2] {
        assert!(net.shown[node].contains(&Event::Nick {
            old: "n0".into(),
            nick: "ana".into()
        }));
    }
    net.say(0, "hi");
    assert_eq!(net.messages(2), vec![("ana".into(), "hi".into())]);
    net.say(0, "/nick bad name");
    assert!(net.shown[0].iter().any(|e| matches!(e, Event::Error(_))));
    let nonce = [7; 16];
    assert_eq!(
        net.nodes[0].hello(nonce),
        Frame::Hello(Hello {
            nick: "ana".into(),
            node: node_id(0),
            listen: Some(5000),
            key: NodeKey {
                key: key(0).verifying_key(),
                run: run_of(0, 0),
            },
            nonce,
        })
    );
    net.say(2, "/msg ana to ana");
    assert!(net.shown[0]
        .iter()
        .any(|e| matches!(e, Event::Dm { text, .. } if text == "to ana")));
}

#[test]
fn me_and_names() {
    let mut net = star(3);
    net.say(1, "/me waves");
    assert!(net.shown[2].contains(&Event::Me {
        from: "n1".into(),
        text: "waves".into()
    }));
    net.say(2, "/names");
    let names = net.shown[2].iter().find_map(|e| match e {
        Event::Names(n) => Some(n.clone()),
        _ => None,
    });
    let names = names.expect("names shown");
    let nicks: Vec<&str> = names.iter().map(|n| n.nick.as_str()).collect();
    assert_eq!(nicks, vec!["n0", "n1", "n2"]);
    assert!(names[2].you && !names[0].you);
    assert_eq!(names[0].addr.as_deref(), Some("10.0.0.0:5000"));
}

#[test]
fn quit_words_in_any_case_and_trimmed() {
    for word in ["sair", " SAIR ", "/quit", "/Exit", "/quit going home"] {
        let mut net = chain(2);
        net.say(0, word);
        assert!(net.quit[0], "{word:?}");
    }
    let mut net = chain(2);
    net.say(0, "sair agora");
    assert!(!net.quit[0]);
    assert_eq!(net.messages(1), vec![("n0".into(), "sair agora".into())]);
}

#[test]
fn commands_are_not_sent_and_double_slash_escapes() {
    let mut net = chain(2);
    net.say(0, "/bogus x");
    net.say(0, "/help");
    net.say(0, "//etc/passwd is a path");
    net.say(0, "   ");
    assert_eq!(
        net.messages(1),
        vec![("n0".into(), "/etc/passwd is a path".into())]
    );
    assert!(net.shown[0]
        .iter()
        .any(|e| matches!(e, Event::Error(t) if t.contains("/bogus"))));
    assert_eq!(
        net.shown[0]
            .iter()
            .filter(|e| matches!(e, Event::Sent { .. }))
            .count(),
        1
    );
}

#[test]
fn help_shows_one_line_per_command_to_the_user_only() {
    let mut net = chain(2);
    net.say(0, "/help");
    let shown: Vec<&Event> = net.shown[0]
        .iter()
        .filter(|e| matches!(e, Event::Info(_)))
        .collect();
    let want: Vec<Event> = crate::chat::HELP_LINES
        .iter()
        .map(|l| Event::Info(l.to_string()))
        .collect();
    assert_eq!(shown, want.iter().collect::<Vec<_>>());
    assert!(net.messages(1).is_empty());
}

#[test]
fn a_long_line_is_split_not_cut() {
    let mut net = chain(2);
    let long = "é".repeat(MAX_TEXT);
    net.say(0, &long);
    let got: String = net.messages(1).into_iter().map(|(_, t)| t).collect();
    assert_eq!(got, long);
    assert_eq!(net.messages(1).len(), 2);
}
