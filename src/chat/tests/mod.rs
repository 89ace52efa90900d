//! Scenario tests of the chat: single chats driven by events with a fake clock, and several
//! chats wired in memory ([`net::Net`]) to prove relay, dedup and order over chain, ring and
//! star topologies. Unit tests of each room live beside it.

mod bounds;
mod commands;
mod discovery;
mod fake_node;
mod flood;
mod guests;
mod handshake;
mod history;
mod keepalive;
mod mutants;
mod net;
mod nicks;
mod per_address;
mod relay;
mod replay;
mod sealed;
mod signed;
mod single;
mod timers;
