//! peerchat: a peer-to-peer terminal chat on one `mio::Poll` event loop.
//!
//! Modules, arrows one way: `reactor` -> `conn` -> `core` -> `protocol`, with `output`, `eventlog`,
//! `input`, `fanout`, `limits`, `safe` and `signals` beside them. `main.rs` only wires the command line to the reactor.

pub mod cli;
pub mod conn;
pub mod core;
pub mod eventlog;
pub mod fanout;
pub mod input;
pub mod limits;
pub mod output;
pub mod protocol;
pub mod reactor;
pub mod safe;
pub mod signals;
