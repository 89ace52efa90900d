//! Flood control of guests, as the chat applies it.

use super::net::*;

#[test]
fn a_flooding_guest_is_limited_told_and_then_cut_off() {
    let (mut chat, start) = guest_chat();
    chat.handle_line(7, b"hello", start);
    drain(&mut chat);
    // A burst: ten seconds' worth (200) go through, less the one above and the join; the
    // rest are not sent, and the guest is told at once.
    for i in 0..300 {
        chat.handle_line(7, format!("line {i}").as_bytes(), start);
    }
    let (sent, told) = sent_and_told(&drain(&mut chat));
    assert_eq!(sent, 198);
    assert_eq!(
        told,
        vec!["peerchat: slow down: 1 line(s) not sent (at most 20 a second)".to_string()]
    );
    // Then 20 a second: a steady 40 a second for 9 s is half dropped, told once a second,
    // and not cut off yet.
    let mut now = start;
    let mut sent_total = 0;
    let mut told_total = Vec::new();
    for tick in 1..=360 {
        now = start + Duration::from_millis(25 * tick);
        chat.handle_line(7, b"more", now);
        let (sent, told) = sent_and_told(&drain(&mut chat));
        sent_total += sent;
        told_total.extend(told);
    }
    assert!((179..=181).contains(&sent_total), "{sent_total}");
    // Once a second: the 100 of the burst and those of the first second, then 20 each.
    assert!((8..=9).contains(&told_total.len()), "{told_total:?}");
    assert!(told_total[0].contains("122 line(s)"), "{told_total:?}");
    assert!(told_total[1..].iter().all(|t| t.contains(" 20 line(s)")));
    // Ten seconds of flooding: cut off, and everyone told why.
    for tick in 361..=440 {
        now = start + Duration::from_millis(25 * tick);
        chat.handle_line(7, b"more", now);
    }
    let actions = drain(&mut chat);
    assert!(actions.contains(&Action::Close {
        conn: 7,
        reason: "flooding".into()
    }));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Broadcast { frame, .. }
            if matches!(&**frame, Frame::Leave { reason: Some(r), .. } if r == "flooding"))));
    // The other guest, and a guest that pauses, are not affected.
    chat.handle_line(8, b"hi", now);
    assert_eq!(sent_and_told(&drain(&mut chat)).0, 1);
}

#[test]
fn no_rate_limit_when_turned_off() {
    let now = Instant::now();
    let mut cfg = solo("hub", Some(5000));
    cfg.guest_rate = None;
    let mut chat = Chat::new(cfg, now);
    open(
        &mut chat,
        7,
        accepted("127.0.0.1:4000".parse().unwrap()),
        now,
    );
    // Its first line makes it a guest, which is welcomed.
    chat.handle_line(7, b"line 0", now);
    drain(&mut chat);
    for i in 1..5001 {
        chat.handle_line(7, format!("line {i}").as_bytes(), now);
    }
    let (sent, told) = sent_and_told(&drain(&mut chat));
    assert_eq!((sent, told.len()), (5000, 0));
}
