//! A relay played by the test, on the path between two nodes of a private group: a TCP
//! forwarder on loopback from the nodes that dial it to one node's port. It records every byte
//! both ways, and when told it tampers with one record going to that node: changes a byte of
//! it, sends it twice, or sends it after the record that follows it.
//!
//! It reads the wire as `link::noise` frames it: every Noise message, handshake and record
//! alike, is a 2-byte big-endian length then that many bytes. The dialling node (Noise's
//! initiator) sends handshake messages 1 and 3 before its first record, the node dialled sends
//! message 2; only records are tampered with, so the handshake always completes.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// What the relay does to the next record going to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tamper {
    /// Flips one bit of its last byte (in the tag).
    Flip,
    /// Sends it on, then sends it again.
    Replay,
    /// Holds it back and sends it after the next record.
    Reorder,
}

/// Handshake messages the dialling node sends before its first record (1 and 3).
const DIALLER_HANDSHAKE: usize = 2;
/// Handshake messages the node dialled sends before its first record (2).
const DIALLED_HANDSHAKE: usize = 1;

/// What the relay's threads share with the test.
#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<u8>>,
    tamper: Mutex<Option<Tamper>>,
    /// A record is held back for [`Tamper::Reorder`].
    holding: AtomicBool,
    /// The tampering was done (for a reorder: the two records were sent swapped).
    tampered: AtomicBool,
    /// Relayed connections whose both directions have ended.
    ended: AtomicUsize,
}

pub struct Relay {
    pub port: u16,
    shared: Arc<Shared>,
}

impl Relay {
    /// Relays every connection made to its port (a re-dial too) to `target` on loopback.
    pub fn new(target: u16) -> Relay {
        Relay::at(
            Ipv4Addr::LOCALHOST,
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, target),
        )
    }

    /// The same, listening on an ephemeral port of `listen` inside network namespace `ns` (the
    /// relay's threads all live there), relaying to `target` as seen from there.
    pub fn in_namespace(ns: &str, listen: Ipv4Addr, target: SocketAddrV4) -> Relay {
        let path = format!("/var/run/netns/{ns}");
        thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // Only this thread moves; the threads it starts are born in the namespace.
            // SAFETY: a valid descriptor of a network namespace, for the calling thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            Relay::at(listen, target)
        })
        .join()
        .expect("a relay in the namespace")
    }

    fn at(listen: Ipv4Addr, target: SocketAddrV4) -> Relay {
        let listener = TcpListener::bind((listen, 0)).expect("relay bind");
        let port = listener.local_addr().expect("relay addr").port();
        let shared = Arc::new(Shared::default());
        let threads = shared.clone();
        thread::spawn(move || {
            for inbound in listener.incoming() {
                let Ok(inbound) = inbound else { return };
                let Ok(outbound) = TcpStream::connect(target) else {
                    return;
                };
                let pipes = [
                    (inbound.try_clone(), outbound.try_clone(), true),
                    (outbound.try_clone(), inbound.try_clone(), false),
                ];
                // The second direction to end counts the connection as ended.
                let left = Arc::new(AtomicUsize::new(pipes.len()));
                for (from, to, to_target) in pipes {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        return;
                    };
                    let (shared, left) = (threads.clone(), left.clone());
                    thread::spawn(move || {
                        Pipe::new(&shared, to_target).run(from, to);
                        if left.fetch_sub(1, Ordering::SeqCst) == 1 {
                            shared.ended.fetch_add(1, Ordering::SeqCst);
                        }
                    });
                }
            }
        });
        Relay { port, shared }
    }

    /// Every byte relayed so far, both ways, in the order read.
    pub fn recorded(&self) -> Vec<u8> {
        self.shared.seen.lock().expect("relay record").clone()
    }

    /// Tampers with the next record going to the target, once.
    pub fn tamper(&self, how: Tamper) {
        *self.shared.tamper.lock().expect("relay tamper") = Some(how);
    }

    /// A record is held back, waiting for the next one to overtake it.
    pub fn holding(&self) -> bool {
        self.shared.holding.load(Ordering::SeqCst)
    }

    /// The tampering asked for was done.
    pub fn tampered(&self) -> bool {
        self.shared.tampered.load(Ordering::SeqCst)
    }

    /// Relayed connections that have ended, both ways.
    pub fn ended(&self) -> usize {
        self.shared.ended.load(Ordering::SeqCst)
    }
}

/// One direction of one relayed connection, cut into Noise messages.
struct Pipe<'a> {
    shared: &'a Shared,
    /// Tampers only on the way to the target.
    to_target: bool,
    /// Handshake messages still to come this way.
    handshake: usize,
    /// Bytes read that do not make a whole message yet.
    partial: Vec<u8>,
    /// A record held back for a reorder.
    held: Option<Vec<u8>>,
}

impl Pipe<'_> {
    fn new(shared: &Shared, to_target: bool) -> Pipe<'_> {
        let handshake = if to_target {
            DIALLER_HANDSHAKE
        } else {
            DIALLED_HANDSHAKE
        };
        Pipe {
            shared,
            to_target,
            handshake,
            partial: Vec::new(),
            held: None,
        }
    }

    /// Copies `from` to `to`, recording, message by message, until either end closes.
    fn run(mut self, mut from: TcpStream, mut to: TcpStream) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Ok(mut s) = self.shared.seen.lock() {
                s.extend_from_slice(&buf[..n]);
            }
            self.partial.extend_from_slice(&buf[..n]);
            let mut out = Vec::new();
            while let Some(message) = self.next_message() {
                self.pass(message, &mut out);
            }
            if to.write_all(&out).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    }

    /// The next whole message (length included) read, if there is one.
    fn next_message(&mut self) -> Option<Vec<u8>> {
        let header = self.partial.get(..2)?;
        let len = 2 + usize::from(u16::from_be_bytes([header[0], header[1]]));
        if self.partial.len() < len {
            return None;
        }
        Some(self.partial.drain(..len).collect())
    }

    /// Appends `message` to `out` as it is to go on: as read, or tampered with.
    fn pass(&mut self, mut message: Vec<u8>, out: &mut Vec<u8>) {
        if self.handshake > 0 {
            self.handshake -= 1;
            out.extend_from_slice(&message);
            return;
        }
        if let Some(held) = self.held.take() {
            out.extend_from_slice(&message);
            out.extend_from_slice(&held);
            self.shared.tampered.store(true, Ordering::SeqCst);
            return;
        }
        let how = match self.to_target {
            true => self.shared.tamper.lock().ok().and_then(|mut t| t.take()),
            false => None,
        };
        match how {
            None => out.extend_from_slice(&message),
            Some(Tamper::Flip) => {
                if let Some(last) = message.last_mut() {
                    *last ^= 0x01;
                }
                out.extend_from_slice(&message);
                self.shared.tampered.store(true, Ordering::SeqCst);
            }
            Some(Tamper::Replay) => {
                out.extend_from_slice(&message);
                out.extend_from_slice(&message);
                self.shared.tampered.store(true, Ordering::SeqCst);
            }
            Some(Tamper::Reorder) => {
                self.held = Some(message);
                self.shared.holding.store(true, Ordering::SeqCst);
            }
        }
    }
}
