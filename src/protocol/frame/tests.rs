use super::*;
use crate::protocol::testing::{id, m, node_key, signing_key};
use crate::protocol::{seal, ProtocolError};

/// A hello of the test key `seed`.
fn hello(nick: &str, seed: u8, listen: Option<u16>) -> Hello {
    let key = node_key(seed);
    Hello {
        nick: nick.into(),
        node: key.node(),
        listen,
        key,
        nonce: [seed; 16],
    }
}

#[test]
fn frames_round_trip() {
    // A node's own JOIN/HERE carries its key, whose id it must be; a guest's carries none.
    let k = node_key(7);
    let node = m(k.node(), 0);
    let frames = [
        Frame::Hello(hello("alice", 1, Some(5000))),
        Frame::Hello(hello("bob", 2, None)),
        Frame::Msg {
            id: id(1),
            from: m(7, 0),
            nick: "ação".into(),
            text: "  spaced  text 你好 ".into(),
        },
        Frame::Msg {
            id: id(2),
            from: m(7, 3),
            nick: "a".into(),
            text: String::new(),
        },
        Frame::Sdm {
            id: id(3),
            from: m(7, 3),
            nick: "a".into(),
            to: m(8, 0),
            sealed: (0..=255u8).cycle().take(seal::OVERHEAD + 9).collect(),
        },
        Frame::Me {
            id: id(2),
            from: m(7, 0),
            nick: "a".into(),
            text: "waves at everyone".into(),
        },
        Frame::Dm {
            id: id(2),
            from: m(7, 0),
            nick: "a".into(),
            to: m(u64::MAX, 12),
            text: "psst  two spaces".into(),
        },
        Frame::Nick {
            id: id(9),
            member: m(7, 0),
            old: "a".into(),
            nick: "b".into(),
        },
        Frame::Join {
            id: id(3),
            member: m(7, 2),
            nick: "c".into(),
            addr: Some("127.0.0.1:40522".into()),
            key: None,
        },
        Frame::Join {
            id: id(4),
            member: node,
            nick: "c".into(),
            addr: None,
            key: Some(k),
        },
        Frame::Here {
            id: id(4),
            member: m(7, 2),
            nick: "c".into(),
            addr: Some("10.0.0.1:5000".into()),
            key: None,
        },
        Frame::Here {
            id: id(5),
            member: node,
            nick: "c".into(),
            addr: Some("10.0.0.1:5000".into()),
            key: Some(k),
        },
        Frame::Leave {
            id: id(5),
            member: m(7, 0),
            nick: "c".into(),
            reason: Some("line too long".into()),
        },
        Frame::Leave {
            id: id(6),
            member: m(7, 1),
            nick: "c".into(),
            reason: None,
        },
        Frame::Lost {
            id: id(7),
            member: m(8, 0),
            nick: "d".into(),
            reason: Some("connection reset".into()),
        },
        Frame::Lost {
            id: id(8),
            member: m(8, 0),
            nick: "d".into(),
            reason: None,
        },
        Frame::Proof(sign::sign_proof(&signing_key(1), "a", "b")),
        Frame::Bundle(BundleHead {
            node: u64::MAX,
            count: MAX_BUNDLE_FRAMES,
            sig: sign::sign_frames(&signing_key(1), u64::MAX, b"x\n"),
        }),
        Frame::Peers(vec![
            (1, "127.0.0.1:5000".parse().unwrap()),
            (u64::MAX, "[::1]:6000".parse().unwrap()),
        ]),
        Frame::Peers(vec![]),
        Frame::HistHead(HistHead {
            at: 1_700_000_000_123,
            from: 7,
            key: k,
        }),
        Frame::Ping,
        Frame::Pong,
        Frame::Close("duplicate connection".into()),
    ];
    for frame in frames {
        let mut buf = Vec::new();
        encode(&frame, &mut buf);
        assert_eq!(buf.last(), Some(&b'\n'));
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        let line = std::str::from_utf8(&buf[..buf.len() - 1]).unwrap();
        let back = match &frame {
            Frame::Hello(_) => Frame::Hello(parse_hello(line).unwrap()),
            _ => parse_frame(line).unwrap(),
        };
        assert_eq!(back, frame, "{line}");
    }
}

#[test]
fn a_sealed_bundle_is_its_head_then_its_lines_and_its_signature_checks() {
    let key = signing_key(3);
    let node = node_key(3).node();
    let frames = vec![
        Frame::Msg {
            id: MsgId { node, seq: 1 },
            from: m(node, 0),
            nick: "a".into(),
            text: "one".into(),
        },
        Frame::Msg {
            id: MsgId { node, seq: 2 },
            from: m(node, 0),
            nick: "a".into(),
            text: "two".into(),
        },
    ];
    let signed = Signed::seal(&key, node, frames.clone());
    let text = String::from_utf8(signed.wire.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let Ok(Frame::Bundle(head)) = parse_frame(lines[0]) else {
        panic!("{}", lines[0]);
    };
    assert_eq!((head.node, head.count), (node, 2));
    let body = &text.as_bytes()[lines[0].len() + 1..];
    assert!(sign::verify_frames(
        &key.verifying_key(),
        node,
        body,
        &head.sig
    ));
    let read: Vec<Frame> = lines[1..].iter().map(|l| parse_frame(l).unwrap()).collect();
    assert_eq!(read, frames);
    // Sent to a peer, a flooded frame alone is nothing: it travels only signed.
    let mut bare = Vec::new();
    encode_peer(&frames[0], &mut bare);
    assert!(bare.is_empty());
    let mut whole = Vec::new();
    encode_peer(&Frame::Signed(Rc::new(signed.clone())), &mut whole);
    assert_eq!(whole, signed.wire);
}

#[test]
fn hello_reads_as_a_sentence_and_rejects_other_lines() {
    let h = hello("alice", 1, Some(5000));
    let (key, run) = (sign::to_hex(h.key.key.as_bytes()), sign::to_hex(&h.key.run));
    let nonce = sign::to_hex(&h.nonce);
    let node = format!("{:016x}", h.node);
    let mut buf = Vec::new();
    encode(&Frame::Hello(h.clone()), &mut buf);
    let line = format!(
        "peerchat/4 hello from alice (node={node} listen=5000 key={key} run={run} nonce={nonce})"
    );
    assert_eq!(String::from_utf8(buf).unwrap(), format!("{line}\n"));
    assert_eq!(parse_hello(&line), Some(h.clone()));
    // A minor version and unknown fields are room for later versions.
    let later = line
        .replace("peerchat/4 ", "peerchat/4.1 ")
        .replace(" listen=", " x=y listen=");
    assert_eq!(parse_hello(&later), Some(h));
    let other_node = format!("{:016x}", node_key(2).node());
    for other in [
        "hello".to_string(),
        "bob: hi ".to_string(),
        // Version 1 (no key), version 3 (no history) and a later major version are not
        // hellos of ours.
        format!("peerchat/1 hello from alice (node={node} listen=5000)"),
        line.replace("peerchat/4 ", "peerchat/3 "),
        line.replace("peerchat/4 ", "peerchat/5 "),
        "peerchat/4 hello from alice".to_string(),
        line.replace(&format!(" key={key}"), ""),
        line.replace(&format!(" run={run}"), ""),
        line.replace(&format!(" nonce={nonce}"), ""),
        line.replace(&format!("node={node} "), ""),
        // A node id that its key and run do not give: claimed without the key.
        line.replace(&node, &other_node),
        line.replace(&run, "0000000000000000"),
        line.replace(&nonce, &nonce[..30]),
        line.replace("from alice", "from "),
    ] {
        assert_eq!(parse_hello(&other), None, "{other}");
    }
    assert_eq!(
        hello_version(&line.replace("peerchat/4 ", "peerchat/3 ")),
        Some(3)
    );
    assert_eq!(hello_version("peerchat/7.1 hello from x"), Some(7));
    assert_eq!(hello_version("peerchat/1 goodbye"), None);
}

#[test]
fn malformed_and_unknown_frames() {
    assert_eq!(
        parse_frame("WHOIS 1 2"),
        Ok(Frame::Unknown("WHOIS 1 2".into()))
    );
    let k = node_key(7);
    let (key, run) = (sign::to_hex(k.key.as_bytes()), sign::to_hex(&k.run));
    let node = format!("{:016x}", k.node());
    let other = format!("{:016x}", node_key(8).node());
    let sig = "ab".repeat(64);
    let sdm = |hex: &str| format!("SDM {node}:1 {node} bob {node}.2 {hex}");
    let ok = "ab".repeat(seal::OVERHEAD);
    assert!(matches!(parse_frame(&sdm(&ok)), Ok(Frame::Sdm { .. })));
    let sdm_short = sdm(&ok[2..]);
    let sdm_upper = sdm(&ok.to_uppercase());
    let sdm_odd = sdm(&format!("{ok}a"));
    let sdm_space = sdm(&format!("{ok} ab"));
    let sdm_long = sdm(&"ab".repeat(seal::MAX_SEALED + 1));
    let owned = [
        // A node's JOIN without its key, with a key not of its id, or with words after.
        format!("JOIN {node}:1 {node} c -"),
        format!("JOIN {node}:1 {node} c - {key}"),
        format!("HERE {other}:1 {other} c - {key} {run}"),
        format!("JOIN {node}:1 {node} c - {key} {run} extra"),
        format!("JOIN {node}:1 {node} c"),
        // A guest's JOIN carries no key.
        format!("JOIN {node}:1 {node}.2 c - {key} {run}"),
        format!("SIGNED {node} 0 {sig}"),
        format!("SIGNED {node} 65 {sig}"),
        format!("SIGNED {node} +1 {sig}"),
        format!("SIGNED {node} 1 {}", &sig[2..]),
        format!("SIGNED {node} 1 {sig} more"),
        format!("PROOF {}", &sig[2..]),
        format!("PROOF {}", sig.to_uppercase()),
        format!("HIST 12 1 {key}"),
        format!("HIST 12 {key} {run}"),
        format!("HIST -1 1 {key} {run}"),
        format!("HIST 1 +1 {key} {run}"),
        format!("HIST 99999999999999999999 1 {key} {run}"),
        format!("HIST 1 1 {key} {run} extra"),
        format!("HIST 1 1 {run} {key}"),
    ];
    let fixed = [
        "",
        "hello there",
        "MSG",
        "MSG 12:3 0123456789abcdef bob hi",
        "MSG 0123456789abcdef:x 0123456789abcdef bob hi",
        "MSG 0123456789abcdef:1 0123456789abcdef",
        "MSG 0123456789abcdef:1 bob hi",
        "MSG 0123456789abcdef:1 0123456789abcdef.0 bob hi",
        "MSG 0123456789abcdef:1 0123456789abcdef.x bob hi",
        "MSG +123456789abcdef:1 0123456789abcdef bob hi",
        "MSG 0123456789abcdef:+1 0123456789abcdef bob hi",
        "JOIN 0123456789abcdef:1 0123456789abcdef \x1b[2J",
        "DM 0123456789abcdef:1 0123456789abcdef bob",
        "DM 0123456789abcdef:1 0123456789abcdef bob carol hi",
        // Sealed bytes: hex, lower-case, even, one word, at least the overhead long.
        "SDM 0123456789abcdef:1 0123456789abcdef bob 0123456789abcdef",
        &sdm_short,
        &sdm_upper,
        &sdm_odd,
        &sdm_space,
        &sdm_long,
        "NICK 0123456789abcdef:1 0123456789abcdef bob",
        "NICK 0123456789abcdef:1 0123456789abcdef bob x y",
        "PEERS 0123456789abcdef@nowhere",
        "PEERS 127.0.0.1:5000",
        "PROOF",
        "SIGNED",
    ];
    for bad in owned.iter().map(String::as_str).chain(fixed) {
        assert!(
            matches!(parse_frame(bad), Err(ProtocolError::Malformed(_))),
            "{bad:?}"
        );
    }
}
