//! peerchat: a peer-to-peer terminal chat on one `mio::Poll` event loop.
//!
//! Modules, arrows one way: `reactor` -> `conn` -> `chat` -> `protocol`, with `event` (the shared
//! vocabulary), `output`, `eventlog`, `input`, `fanout`, `identity` (the key on disk), `secret`
//! (a private group's passphrase and its key), `timers`, `limits`, `safe` and `signals` beside
//! them, and `link` (a private group's Noise-encrypted links, run by `conn`). `main.rs` only
//! wires the command line to the reactor. See `docs/DESIGN.md`.

pub mod chat;
pub mod cli;
pub mod conn;
pub mod event;
pub mod eventlog;
pub mod fanout;
pub mod identity;
pub mod input;
pub mod limits;
pub mod link;
pub mod output;
pub mod protocol;
pub mod reactor;
pub mod safe;
pub mod secret;
pub mod signals;
pub mod term;
#[cfg(test)]
mod test_rng;
pub mod timers;
