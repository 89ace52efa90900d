//! The integration tests, one binary so the helpers in `util` compile once. Each module runs the
//! real `peerchat` binary (or, in `fuzz`, the library) and waits for conditions with deadlines,
//! never fixed sleeps. Run one area with `cargo test --test it MODULE::`.
//!
//! - `chat`: peers, guests, pipes, exits, errors and signals over loopback.
//! - `faults`: network faults between namespaces: links that go down, lose or delay packets,
//!   resets, half-closes and trickled lines.
//! - `guests`: guests (a raw TCP connection, as `nc`): the welcome and their commands.
//! - `history`: history for late joiners and guests, repair after a split, lines said alone.
//! - `identity`: the identity key on disk: made, used again, chosen, refused.
//! - `fuzz`: seeded property tests of the line decoder, the frame parser and the chat core.
//! - `lan`: `--lan` on hosts of one bridge: found by beacons, rooms and private groups apart,
//!   no UDP without it.
//! - `load`: fan-out under load: order across coalesced writes, stalled readers, thousands of
//!   connections, running out of file descriptors.
//! - `mesh`: mesh mode, the chat commands, the log file and peer exchange.
//! - `nicks`: nicks that cannot pass for another: invisible characters, look-alikes, guests' `~`.
//! - `private`: private groups: nodes of one secret over Noise links, strangers and guests
//!   refused, what a relay on the path sees and what a changed, replayed or reordered record
//!   does, a group on a LAN of namespaces, a DM through a relaying member.
//! - `pty`: the harness that runs peerchat on a pseudo-terminal and reads its screen.
//! - `term`: the interactive terminal front end, on a pty, as a person sees it.
//! - `trust`: what one hostile node could try against the others (forged leaves and ids,
//!   claims of loss, amplification, flipped bits), and old-protocol nodes refused.
//! - `relay`: a relay on the path between two nodes of a private group, reading Noise's
//!   framing: it records the bytes and changes, replays or reorders a record when told.
//! - `fake`: a node played by the test, with its own key, honest or hostile.
//! - `util`: starting nodes and raw connections, waiting with deadlines, namespaces.
//!
//! This file must hold no tests itself, only the module list.

mod fake;
mod relay;
mod util;

mod chat;
mod faults;
mod fuzz;
mod guests;
mod history;
mod identity;
mod lan;
mod load;
mod mesh;
mod nicks;
mod private;
mod pty;
mod term;
mod trust;
