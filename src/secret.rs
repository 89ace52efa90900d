//! The group secret of a private group (issue 13): making a strong one (`--new-secret`), reading
//! it at start-up (`--secret-file PATH` or `PEERCHAT_SECRET`, never a command-line argument,
//! which `ps` shows) and turning it into the 32-byte pre-shared key of the encrypted links.
//! `main` loads it and derives the key once, before the reactor starts.
//!
//! Must not read the process environment except in [`Env::from_process`], so the rules are
//! tested with any environment; the only file it reads is the one it is given.
//!
//! **Which passphrase is used.** Every member must derive the same key, so the text is first put
//! in one form ([`Secret::parse`]):
//! - surrounding whitespace (a trailing newline, a CRLF, spaces pasted around it) is dropped;
//! - text shaped like a generated secret — 28 Crockford base32 symbols once `-` and whitespace
//!   are dropped, in any case — is written the way [`generate`] writes it (lowercase, groups of
//!   four joined by `-`, `i`/`l` read as `1` and `o` as `0`), so `ABCD EFGH …`, `abcdefgh…` and
//!   `abcd-efgh-…` are one secret;
//! - any other text, a passphrase a person chose, is used as typed, in Unicode NFC (the same
//!   letters typed on two systems may arrive composed or decomposed); case, inner spaces and
//!   punctuation count. A chosen passphrase that happens to have the generated shape is also
//!   folded, which costs it at most its letters' case.
//!
//! **Where it comes from** ([`load`]): the first line of `--secret-file`, a regular file that
//! only its owner may read or write (0600 or 0400; no bit for group or others, as ssh asks of
//! keys), at most 4 KiB, later lines ignored; or
//! `PEERCHAT_SECRET`, one line. Both given is refused rather than one silently preferred: the
//! one not used would otherwise show up later only as `cannot join: wrong secret`. An empty
//! file or an empty `PEERCHAT_SECRET` is refused too, never read as "no secret": a node meant to
//! be private must not start in plain text because `$(cat missing-file)` gave nothing.

use std::borrow::Cow;
use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::{OsRng, RngCore};
use unicode_normalization::UnicodeNormalization;

/// The environment variable holding the group's passphrase.
pub const ENV_VAR: &str = "PEERCHAT_SECRET";

/// A secret file holds one short line: anything larger is not one (and is not read whole).
pub const MAX_FILE: u64 = 4096;

/// Symbols in a generated secret: 28 of 5 bits, 140 bits from the OS random number generator.
pub const SYMBOLS: usize = 28;

/// Symbols between two `-` in a generated secret, short enough to read aloud and compare.
pub const GROUP: usize = 4;

/// Crockford's base32 alphabet, lowercase: digits and letters without `i`, `l`, `o` and `u`,
/// so nothing read aloud or written by hand is mistaken for another symbol.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Argon2id memory in KiB: 64 MiB. With [`T_COST`] one derivation takes about a quarter of a
/// second on a 2-core machine (release build: 0.21-0.28 s), done once at start-up.
pub const M_COST_KIB: u32 = 64 * 1024;

/// Argon2id passes over the memory: five, as three took 0.17 s there (filling the 64 MiB the
/// first time costs more than a later pass), short of the quarter second wanted.
pub const T_COST: u32 = 5;

/// Argon2id lanes: one, so a node's start-up needs one core, as does each guess.
pub const P_COST: u32 = 1;

/// The salt of every peerchat group's key derivation.
///
/// Fixed, because all members must derive the same key from the passphrase alone, with nothing
/// else shared beforehand (a salt sent in the clear in the handshake would be the same for
/// everyone who asks, so it would protect nothing more). What a fixed salt costs: someone can
/// spend the Argon2id work for a list of likely passphrases once and use the table against
/// every peerchat group, instead of once per group; and two groups with the same passphrase
/// have the same key. A salt naming peerchat at least keeps tables made for other programs
/// useless here. None of this matters for a [`generate`]d secret (140 bits: no list holds it);
/// it matters for weak chosen ones, which are guessable anyway (see [`derive_psk`]).
pub const SALT: &[u8] = b"peerchat group secret v1";

/// The length of the pre-shared key.
pub const PSK_LEN: usize = 32;

/// A new random secret for `peerchat --new-secret`: 28 lowercase Crockford base32 symbols
/// (140 bits) in groups of four, `xxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`.
pub fn generate() -> Result<String, SecretError> {
    let mut bytes = [0u8; SYMBOLS];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| SecretError::Random(e.to_string()))?;
    // 256 is a multiple of 32: the low five bits of a uniform byte are a uniform symbol.
    let symbols: Vec<u8> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b & 31)])
        .collect();
    wipe(&mut bytes);
    Ok(grouped(&symbols))
}

/// `symbols` (alphabet bytes) in groups of [`GROUP`] joined by `-`.
fn grouped(symbols: &[u8]) -> String {
    let groups: Vec<&str> = symbols
        .chunks(GROUP)
        .map(|g| std::str::from_utf8(g).expect("alphabet symbols are ASCII"))
        .collect();
    groups.join("-")
}

/// The alphabet symbol `c` stands for, in any case, with Crockford's readings of `i`, `l`
/// (one) and `o` (zero); `None` if it is not one.
fn symbol(c: char) -> Option<u8> {
    let c = c.to_ascii_lowercase();
    let c = match c {
        'i' | 'l' => '1',
        'o' => '0',
        c => c,
    };
    ALPHABET.iter().copied().find(|&s| char::from(s) == c)
}

/// `text` in the generated form if it has the generated shape (see the module comment).
fn as_generated(text: &str) -> Option<String> {
    let symbols: Option<Vec<u8>> = text
        .chars()
        .filter(|&c| c != '-' && !c.is_whitespace())
        .map(symbol)
        .collect();
    symbols.filter(|s| s.len() == SYMBOLS).map(|s| grouped(&s))
}

/// A group's passphrase, in the one form every member derives the key from. Its `Debug` does
/// not show it; its bytes are overwritten when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The passphrase in `text` (see the module comment for the form); `from` names where it
    /// came from, for the error.
    pub fn parse(text: &str, from: Source) -> Result<Secret, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty(from));
        }
        if text.contains(['\n', '\r']) {
            return Err(SecretError::MultiLine(from));
        }
        Ok(Secret(match as_generated(text) {
            Some(generated) => generated,
            None => nfc(text).into_owned(),
        }))
    }

    /// The passphrase the key is derived from.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it has the shape of a [`generate`]d secret.
    pub fn is_generated(&self) -> bool {
        as_generated(&self.0).as_deref() == Some(self.0.as_str())
    }

    /// The links' pre-shared key: [`derive_psk`] of this passphrase.
    pub fn psk(&self) -> [u8; PSK_LEN] {
        derive_psk(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut std::mem::take(&mut self.0).into_bytes());
    }
}

/// `text` in Unicode NFC, borrowed when it already is (all ASCII text is).
fn nfc(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfc().collect())
    }
}

/// Overwrites `bytes` with zeros, as far as the optimiser lets a best effort go (no copies
/// that were made before are reached).
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// The Argon2id parameters of [`derive_psk`]: [`M_COST_KIB`], [`T_COST`], [`P_COST`], a
/// [`PSK_LEN`]-byte output. Every member must use the same: changing them is a new protocol.
pub fn params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(PSK_LEN)).expect("valid Argon2 parameters")
}

/// The 32-byte pre-shared key of the links from the group's `passphrase` (as
/// [`Secret::as_str`] gives it): Argon2id (version 0x13) with [`params`] and the fixed
/// [`SALT`]. Slow on purpose, about a quarter of a second and 64 MiB, so each guess costs as
/// much.
///
/// A weak passphrase is still guessable: someone who recorded one handshake can try
/// passphrases offline, at their own pace and on many machines, until one completes it; a
/// dictionary word or a short phrase falls in hours. A [`generate`]d secret (140 bits) cannot
/// be found that way. Deterministic: the same passphrase gives the same key on every node.
pub fn derive_psk(passphrase: &str) -> [u8; PSK_LEN] {
    derive_with(params(), passphrase)
}

/// [`derive_psk`] with other parameters (the tests use small ones).
fn derive_with(params: Params, passphrase: &str) -> [u8; PSK_LEN] {
    let mut key = [0u8; PSK_LEN];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), SALT, &mut key)
        // Fails only for a salt, output or parameters out of range: all are fixed and valid.
        .expect("Argon2id with valid parameters");
    key
}

/// The one environment variable the secret may come from, passed in rather than read where
/// it is used.
#[derive(Clone, Default)]
pub struct Env {
    pub peerchat_secret: Option<OsString>,
}

impl Env {
    /// This process's `PEERCHAT_SECRET`.
    pub fn from_process() -> Env {
        Env {
            peerchat_secret: std::env::var_os(ENV_VAR),
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.peerchat_secret.as_ref().map(|_| "..");
        f.debug_struct("Env")
            .field("peerchat_secret", &set)
            .finish()
    }
}

/// Where a secret came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    EnvVar,
    /// Given directly (tests, a future prompt).
    Text,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "group secret file {}", path.display()),
            Source::EnvVar => f.write_str(ENV_VAR),
            Source::Text => f.write_str("the group secret"),
        }
    }
}

/// The group secret from `--secret-file` (`file`) or `PEERCHAT_SECRET`; `None` when neither
/// is given (a chat without a secret). Both given, or either empty, is refused (see the module
/// comment).
pub fn load(file: Option<&Path>, env: &Env) -> Result<Option<Secret>, SecretError> {
    match (file, &env.peerchat_secret) {
        (Some(path), Some(_)) => Err(SecretError::Both(path.to_path_buf())),
        (Some(path), None) => read_file(path).map(Some),
        (None, Some(value)) => {
            let text = value.to_str().ok_or(SecretError::NotText(Source::EnvVar))?;
            Secret::parse(text, Source::EnvVar).map(Some)
        }
        (None, None) => Ok(None),
    }
}

/// The secret on the first line of the file at `path`, after checking that only its owner may
/// read or write it, that it is a regular file and at most [`MAX_FILE`] bytes.
pub fn read_file(path: &Path) -> Result<Secret, SecretError> {
    let file = open_private(path)?;
    let mut bytes = Vec::new();
    let read = file.take(MAX_FILE + 1).read_to_end(&mut bytes);
    let result = read
        .map_err(|e| SecretError::io(path, &e))
        .and_then(|_| first_line(&bytes, path));
    wipe(&mut bytes);
    result
}

/// The secret on the first line of a secret file's `bytes`.
fn first_line(bytes: &[u8], path: &Path) -> Result<Secret, SecretError> {
    let from = || Source::File(path.to_path_buf());
    if bytes.len() as u64 > MAX_FILE {
        return Err(SecretError::TooLarge(path.to_path_buf()));
    }
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| SecretError::NotText(from()))?;
    // A CRLF's CR goes with the surrounding whitespace.
    Secret::parse(line, from())
}

/// Opens `path` for reading after checking it is a regular file that group and others can
/// neither read nor write. Opened without blocking, so a FIFO given by mistake is refused
/// rather than waited on.
fn open_private(path: &Path) -> Result<File, SecretError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| SecretError::io(path, &e))?;
    let meta = file.metadata().map_err(|e| SecretError::io(path, &e))?;
    if !meta.is_file() {
        return Err(SecretError::NotAFile(path.to_path_buf()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Exposed {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(file)
}

/// Why no secret could be had: the node does not start. Each shows as one line naming the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretError {
    /// Group or others may read or write the file (`mode` holds its permission bits).
    Exposed {
        path: PathBuf,
        mode: u32,
    },
    /// Nothing but whitespace (on the file's first line).
    Empty(Source),
    /// `PEERCHAT_SECRET` holds a line break (a file's later lines are ignored).
    MultiLine(Source),
    /// Not UTF-8.
    NotText(Source),
    /// The file is larger than [`MAX_FILE`].
    TooLarge(PathBuf),
    /// A directory, a device or a FIFO.
    NotAFile(PathBuf),
    /// Both `--secret-file` (this path) and `PEERCHAT_SECRET`.
    Both(PathBuf),
    Io {
        path: PathBuf,
        why: String,
    },
    /// The system gave no random bytes for a new secret.
    Random(String),
}

impl SecretError {
    fn io(path: &Path, e: &io::Error) -> SecretError {
        SecretError::Io {
            path: path.to_path_buf(),
            why: crate::reactor::describe(e),
        }
    }
}

impl fmt::Display for SecretError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretError::Exposed { path, mode } => write!(
                f,
                "group secret file {} is readable or writable by other users (mode {mode:04o}); \
                 run: chmod 600 {}",
                path.display(),
                crate::identity::shell_quoted(path)
            ),
            SecretError::Empty(from) => write!(
                f,
                "{from} is empty: put the group's passphrase in it (peerchat --new-secret prints \
                 a strong one)"
            ),
            SecretError::MultiLine(from) => write!(
                f,
                "{from} holds a line break: the group's passphrase is one line"
            ),
            SecretError::NotText(from) => write!(
                f,
                "{from} is not UTF-8 text: write the group's passphrase in UTF-8"
            ),
            SecretError::TooLarge(path) => write!(
                f,
                "group secret file {} is larger than {} KiB: it should hold the passphrase on one \
                 line",
                path.display(),
                MAX_FILE / 1024
            ),
            SecretError::NotAFile(path) => write!(
                f,
                "group secret file {} is not a regular file",
                path.display()
            ),
            SecretError::Both(path) => write!(
                f,
                "both --secret-file {} and {ENV_VAR} are given: unset {ENV_VAR} or drop \
                 --secret-file",
                path.display()
            ),
            SecretError::Io { path, why } => {
                write!(f, "cannot read group secret file {}: {why}", path.display())
            }
            SecretError::Random(why) => {
                write!(f, "cannot get random bytes for a group secret: {why}")
            }
        }
    }
}

impl std::error::Error for SecretError {}

#[cfg(test)]
mod tests;
