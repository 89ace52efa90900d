//! Encrypted links: what a connection between two nodes of a private group speaks once both
//! hold the group's secret. One room so far:
//! - `noise.rs`: the Noise handshake that binds each side's identity key, and the records that
//!   carry the link's bytes afterwards.
//!
//! Pure code: bytes in, bytes out, no clock. Must not read sockets, files or the environment,
//! nor derive the pre-shared key from a passphrase (the caller hands over the 32 bytes), nor
//! decide what a failed link means for the chat (the caller closes the connection).
//!
//! Used by `conn` when a secret is given: every connection's bytes go through its link.

pub mod noise;

pub use noise::{Link, LinkError, LinkKeys, Progress, MAX_RECORD, MAX_RECORD_PLAIN, PATTERN};

#[cfg(test)]
mod tests;
