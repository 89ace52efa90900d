//! Address fields: what a `JOIN`/`HERE` may say about where a member is (`-`, or a numeric
//! `host:port` of bounded length), and the listening port a hello may announce.
//!
//! Pure code: a string in, a verdict out. Must not resolve names or touch the network. Nodes
//! only ever write addresses they took from a socket, so names (DNS) are refused: a field that
//! needed a lookup would be a lookup any peer could make us do, and free text of any shape
//! could be stored and passed on by every node.

use std::net::SocketAddr;

/// The longest address field, in bytes. The longest a node writes is an IPv6 address with a
/// scope id and a port, `[ffff:…:ffff%4294967295]:65535`, 58 bytes.
pub const MAX_ADDR: usize = 64;

/// True for an address field a frame may carry: `-` (not known), or `a.b.c.d:port` or
/// `[v6]:port` (numeric, port 1-65535) of at most [`MAX_ADDR`] bytes.
pub fn valid_addr(s: &str) -> bool {
    s == "-" || (s.len() <= MAX_ADDR && s.parse::<SocketAddr>().is_ok_and(|a| a.port() != 0))
}

/// A port a node may listen on and announce: 1-65535, decimal. Port 0 is where nobody listens,
/// and an address with it would be refused by every node it is passed to.
pub fn listen_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_a_node_writes_are_valid() {
        for ok in [
            "-",
            "127.0.0.1:5000",
            "10.0.0.4:1",
            "255.255.255.255:65535",
            "[::1]:6000",
            "[::ffff:10.0.0.1]:5000",
            "[fe80::1%2]:5000",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
        ] {
            assert!(valid_addr(ok), "{ok:?}");
            if ok != "-" {
                let shown = ok.parse::<SocketAddr>().map(|a| a.to_string());
                assert_eq!(shown.as_deref(), Ok(ok), "a node writes it so");
            }
        }
    }

    #[test]
    fn free_text_names_and_port_zero_are_not_addresses() {
        let long = format!("{}:5000", "1".repeat(70));
        for bad in [
            "",
            "--",
            "localhost:5000",
            "example.com:80",
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "127.0.0.1:-1",
            "01.2.3.4:5000",
            "::1:5000",
            "[::1]",
            "[fe80::1%eth0]:5000",
            " 127.0.0.1:5000",
            "127.0.0.1:5000 ",
            "127.0.0.1:5000 and some more text",
            "\u{1b}[2J",
            long.as_str(),
        ] {
            assert!(!valid_addr(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_address_is_at_most_64_bytes() {
        // The longest a node writes fits, with room to spare.
        let widest = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535";
        assert!(widest.len() <= MAX_ADDR);
        assert!(valid_addr(widest));
        // Parseable, but past the cap (leading zeros in the port make it long).
        let padded = format!("127.0.0.1:{}5000", "0".repeat(MAX_ADDR));
        assert!(padded.parse::<SocketAddr>().is_ok());
        assert!(!valid_addr(&padded));
    }

    #[test]
    fn a_listening_port_is_1_to_65535() {
        assert_eq!(listen_port("5000"), Some(5000));
        assert_eq!(listen_port("65535"), Some(65535));
        for bad in ["0", "65536", "-1", "", "x", "+5"] {
            assert_eq!(listen_port(bad), None, "{bad:?}");
        }
    }

    /// The parser calls the check: a `JOIN`/`HERE` with free text where the address goes is a
    /// malformed frame (it would be stored and passed on by every node), for a guest and for a
    /// node itself (whose key and run follow the address), and a hello announcing port 0 is
    /// not a hello.
    #[test]
    fn frames_with_a_bad_address_are_malformed() {
        use crate::protocol::testing::node_key;
        use crate::protocol::{encode, parse_frame, parse_hello, sign, Frame, Hello};
        use crate::protocol::{ProtocolError, VERSION};
        let bob = node_key(2);
        let key_run = format!(
            "{} {}",
            sign::to_hex(bob.key.as_bytes()),
            sign::to_hex(&bob.run)
        );
        let guest = format!("0123456789abcdef:1 {:016x}.2 guest-2", bob.node());
        let node = format!("0123456789abcdef:1 {:016x} bob", bob.node());
        let free = format!("{}:1", "x".repeat(60_000));
        for verb in ["JOIN", "HERE"] {
            for ok in ["-", "10.0.0.2:40000", "[::1]:5000"] {
                for line in [
                    format!("{verb} {guest} {ok}"),
                    format!("{verb} {node} {ok} {key_run}"),
                ] {
                    assert!(parse_frame(&line).is_ok(), "{line}");
                }
            }
            for bad in ["localhost:5000", "10.0.0.2:0", "-and-more", free.as_str()] {
                for line in [
                    format!("{verb} {guest} {bad}"),
                    format!("{verb} {node} {bad} {key_run}"),
                ] {
                    assert_eq!(
                        parse_frame(&line),
                        Err(ProtocolError::Malformed("bad address")),
                        "{line:.80}"
                    );
                }
            }
            // Free text after a good address is no address either.
            let more = format!("{verb} {guest} - and more");
            assert!(parse_frame(&more).is_err(), "{more}");
        }
        let join = parse_frame(&format!("JOIN {guest} -"));
        assert!(
            matches!(join, Ok(Frame::Join { addr: None, .. })),
            "{join:?}"
        );
        let mut hello = Vec::new();
        let h = Hello {
            nick: "bob".into(),
            node: bob.node(),
            listen: Some(5000),
            key: bob,
            nonce: [2; 16],
        };
        encode(&Frame::Hello(h), &mut hello);
        let hello = String::from_utf8_lossy(&hello).trim_end().to_string();
        assert!(hello.starts_with(&format!("peerchat/{VERSION} hello")));
        assert!(parse_hello(&hello).is_some());
        for (port, ok) in [("-", true), ("0", false), ("+5", false)] {
            let line = hello.replace("listen=5000", &format!("listen={port}"));
            assert_eq!(parse_hello(&line).is_some(), ok, "{line}");
        }
    }
}
