//! The person's identity key on disk and the keys remembered for nicks (`known_keys`): where
//! they live, reading them at start-up, creating the key at the first run, appending to
//! `known_keys`. The IO side of identity; the chat core gets the key and the remembered keys
//! in `chat::Config` and never touches these files.
//!
//! Must not hold chat rules (which key is remembered, what a change means: `chat::known`) nor
//! read the process environment except in [`Env::from_process`], so the path rules are tested
//! with any environment.
//!
//! The key file is `peerchat identity v1\n<64 lowercase hex of the 32-byte seed>\n`, mode 0600
//! in a directory made 0700; a key file that others may read or write is refused, as ssh does.
//! It is written to a temporary file in the same directory and hard-linked into place, so two
//! nodes starting at once for the first time end with one key: the second link fails and that
//! node reads the first one's key. An existing file is never overwritten.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, SECRET_KEY_LENGTH};
use rand_core::{OsRng, RngCore};

use crate::chat::KnownKeys;

/// The first line of a key file: what it is, and the version of its format.
const HEADER: &str = "peerchat identity v1";

/// The key file's name in the config directory.
pub const IDENTITY_FILE: &str = "identity";

/// The remembered keys' file name, in the directory of the key file.
pub const KNOWN_FILE: &str = "known_keys";

/// A key file is a few dozen bytes: anything much larger is not one (and is not read whole).
const MAX_KEY_FILE: u64 = 4096;

/// Bytes of `known_keys` read at start-up, at most (some 25 000 lines; the chat keeps 10 000).
pub const MAX_KNOWN_BYTES: u64 = 1 << 20;

/// What the run-only warning says.
pub const RUN_ONLY: &str = "neither HOME nor XDG_CONFIG_HOME is set: this node's identity key is \
                            for this run only (give --identity PATH to keep one)";

/// The two environment variables the default path depends on, passed in rather than read
/// where they are used.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub xdg_config_home: Option<OsString>,
    pub home: Option<OsString>,
}

impl Env {
    /// This process's `XDG_CONFIG_HOME` and `HOME`.
    pub fn from_process() -> Env {
        Env {
            xdg_config_home: std::env::var_os("XDG_CONFIG_HOME"),
            home: std::env::var_os("HOME"),
        }
    }
}

/// Where the key file is by default: `$XDG_CONFIG_HOME/peerchat/identity`, else
/// `$HOME/.config/peerchat/identity`. A variable that is empty or not an absolute path is
/// ignored, as the XDG base directory specification says; `None` when neither is usable.
pub fn default_path(env: &Env) -> Option<PathBuf> {
    let usable = |v: &Option<OsString>| v.as_ref().map(PathBuf::from).filter(|p| p.is_absolute());
    let config = usable(&env.xdg_config_home)
        .or_else(|| usable(&env.home).map(|home| home.join(".config")))?;
    Some(config.join("peerchat").join(IDENTITY_FILE))
}

/// The `known_keys` file beside the key file at `identity`.
pub fn known_path(identity: &Path) -> PathBuf {
    match identity.parent() {
        Some(dir) => dir.join(KNOWN_FILE),
        None => PathBuf::from(KNOWN_FILE),
    }
}

/// The key and remembered keys a node starts with.
#[derive(Debug)]
pub struct Identity {
    pub key: SigningKey,
    /// Where the key is kept; `None` for a key of this run only.
    pub path: Option<PathBuf>,
    /// Where remembered keys are appended ([`append_known`]); `None`: none are kept.
    pub known_path: Option<PathBuf>,
    pub known: KnownKeys,
    /// Warnings for the user, one line each (a run-only key, a `known_keys` read in part).
    pub warnings: Vec<String>,
}

/// Loads the key at `explicit` (`--identity`), else at the default path, creating it if it is
/// missing, and the keys remembered beside it. With no path at all: a key for this run only,
/// nothing remembered, and a warning.
pub fn load(explicit: Option<&Path>, env: &Env) -> Result<Identity, IdentityError> {
    let Some(path) = explicit
        .map(Path::to_path_buf)
        .or_else(|| default_path(env))
    else {
        return Ok(Identity {
            key: fresh_key()?,
            path: None,
            known_path: None,
            known: KnownKeys::new(),
            warnings: vec![RUN_ONLY.to_string()],
        });
    };
    let key = load_or_create_key(&path)?;
    let known_path = known_path(&path);
    let (known, warnings) = read_known(&known_path)?;
    Ok(Identity {
        key,
        path: Some(path),
        known_path: Some(known_path),
        known,
        warnings,
    })
}

/// A new random key, from the system's random bytes; this function writes it nowhere.
pub fn fresh_key() -> Result<SigningKey, IdentityError> {
    let mut seed = [0u8; SECRET_KEY_LENGTH];
    OsRng
        .try_fill_bytes(&mut seed)
        .map_err(|e| IdentityError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// The key in the file at `path`; if there is none, a new key written there first (the
/// directory made if needed). Never overwrites a file.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, IdentityError> {
    if let Some(key) = read_key(path)? {
        return Ok(key);
    }
    make_dir(path)?;
    let key = fresh_key()?;
    match write_new(path, &encode(&key)) {
        Ok(()) => Ok(key),
        // Another node created it meanwhile: its key is the one.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            read_key(path)?.ok_or_else(|| IdentityError::io(path, Doing::Read, &e))
        }
        Err(e) => Err(IdentityError::io(path, Doing::Create, &e)),
    }
}

/// The text of a key file holding `key`.
pub fn encode(key: &SigningKey) -> String {
    let hex: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("{HEADER}\n{hex}\n")
}

/// The key in a key file's text, or why it is not one.
pub fn decode(text: &str) -> Result<SigningKey, &'static str> {
    let mut lines = text.split('\n');
    if lines.next() != Some(HEADER) {
        return Err("its first line is not `peerchat identity v1`");
    }
    let hex = lines.next().unwrap_or_default();
    if hex.len() != 2 * SECRET_KEY_LENGTH
        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err("its second line is not 64 lowercase hex digits");
    }
    if !lines.all(str::is_empty) {
        return Err("it has more than two lines");
    }
    let mut seed = [0u8; SECRET_KEY_LENGTH];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| "bad hex")?;
    }
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// The key at `path`; `None` if there is no file there.
fn read_key(path: &Path) -> Result<Option<SigningKey>, IdentityError> {
    let Some(file) = open_private(path, Kind::Identity)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| IdentityError::io(path, Doing::Read, &e))?;
    let malformed = |why| IdentityError::Malformed {
        path: path.to_path_buf(),
        why,
    };
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(malformed("it is far too large"));
    }
    let text = String::from_utf8(bytes).map_err(|_| malformed("it is not text"))?;
    decode(&text).map(Some).map_err(malformed)
}

/// What a file holds, for its checks and messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Identity,
    Known,
}

impl Kind {
    /// Permission bits that make the file refused: the key must be the owner's alone; the
    /// remembered keys must not be writable by others (who could plant a key for a nick).
    fn refused_bits(self) -> u32 {
        match self {
            Kind::Identity => 0o077,
            Kind::Known => 0o022,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Identity => "identity key",
            Kind::Known => "known keys file",
        }
    }
}

/// Opens `path` for reading after checking it is a regular file with no refused permission
/// bits; `None` if it does not exist. Opened without blocking, so a FIFO given by mistake is
/// refused rather than waited on.
fn open_private(path: &Path, kind: Kind) -> Result<Option<File>, IdentityError> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(IdentityError::io(path, Doing::Read, &e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| IdentityError::io(path, Doing::Read, &e))?;
    if !meta.is_file() {
        return Err(IdentityError::NotAFile {
            path: path.to_path_buf(),
            kind,
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & kind.refused_bits() != 0 {
        return Err(IdentityError::Exposed {
            path: path.to_path_buf(),
            mode,
            kind,
        });
    }
    Ok(Some(file))
}

/// Makes the directory of `path` (and its parents), mode 0700, if missing.
fn make_dir(path: &Path) -> Result<(), IdentityError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| IdentityError::io(dir, Doing::MakeDir, &e)),
        _ => Ok(()),
    }
}

/// Puts a new file with `text` at `path`, mode 0600, whole or not at all: written to a
/// temporary file beside it, then hard-linked into place. `AlreadyExists` if a file is there.
fn write_new(path: &Path, text: &str) -> io::Result<()> {
    let tmp = temp_beside(path)?;
    let written = write_exclusive(&tmp, text);
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists && !path.exists() => {
            // A file system without hard links (FAT, some network ones): created exclusively
            // in place instead, which still never overwrites.
            write_exclusive(path, text)
        }
        other => other,
    }
}

/// A path for a temporary file in the directory of `path`, unique to this attempt.
fn temp_beside(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut tag = [0u8; 8];
    OsRng
        .try_fill_bytes(&mut tag)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let unique = format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        u64::from_ne_bytes(tag)
    );
    Ok(path.with_file_name(unique))
}

/// Creates `path` (failing if it exists), mode 0600, with `text`, flushed to the disk.
fn write_exclusive(path: &Path, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// The keys remembered in the file at `path` (none if it does not exist), and a warning if it
/// was read only in part. Lines that are not valid UTF-8 are skipped like other bad lines.
pub fn read_known(path: &Path) -> Result<(KnownKeys, Vec<String>), IdentityError> {
    let Some(file) = open_private(path, Kind::Known)? else {
        return Ok((KnownKeys::new(), Vec::new()));
    };
    let mut bytes = Vec::new();
    file.take(MAX_KNOWN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| IdentityError::io(path, Doing::Read, &e))?;
    let mut warnings = Vec::new();
    if bytes.len() as u64 > MAX_KNOWN_BYTES {
        // The last line may be cut: keep whole lines only.
        bytes.truncate(MAX_KNOWN_BYTES as usize);
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        bytes.truncate(whole);
        warnings.push(format!(
            "{} is larger than {} KiB: only its beginning was read",
            path.display(),
            MAX_KNOWN_BYTES / 1024
        ));
    }
    Ok((KnownKeys::from_text(&utf8_lines(&bytes)), warnings))
}

/// The lines of `bytes` that are valid UTF-8, each with its newline.
fn utf8_lines(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_string();
    }
    let mut text = String::new();
    for line in bytes.split(|&b| b == b'\n') {
        if let Ok(line) = std::str::from_utf8(line) {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

/// Appends `line` (as [`KnownKeys::remember`] gives it) and a newline to the `known_keys` file
/// at `path`, creating it with mode 0600. One `write` in append mode, so lines of nodes sharing
/// the file do not interleave. A line holding a line break is refused.
pub fn append_known(path: &Path, line: &str) -> io::Result<()> {
    if line.contains(['\n', '\r']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a known key line cannot hold a line break",
        ));
    }
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

/// What was being done when an IO error came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doing {
    Read,
    Create,
    MakeDir,
}

/// Why the identity could not be loaded: the node does not start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// Others may read or write the file (`mode` holds its permission bits).
    Exposed {
        path: PathBuf,
        mode: u32,
        kind: Kind,
    },
    /// The key file is not one; it is left as it is.
    Malformed { path: PathBuf, why: &'static str },
    /// A directory, a device or a FIFO where a file should be.
    NotAFile { path: PathBuf, kind: Kind },
    Io {
        path: PathBuf,
        doing: Doing,
        why: String,
    },
    /// The system gave no random bytes for a new key.
    Random(String),
}

impl IdentityError {
    fn io(path: &Path, doing: Doing, e: &io::Error) -> IdentityError {
        IdentityError::Io {
            path: path.to_path_buf(),
            doing,
            why: crate::reactor::describe(e),
        }
    }
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Exposed { path, mode, kind } => {
                let who = match kind {
                    Kind::Identity => "readable or writable",
                    Kind::Known => "writable",
                };
                write!(
                    f,
                    "{} {} is {who} by other users (mode {mode:04o}); run: chmod 600 {}",
                    kind.name(),
                    path.display(),
                    shell_quoted(path)
                )
            }
            IdentityError::Malformed { path, why } => write!(
                f,
                "{} is not a peerchat identity key ({why}); it was left as it is: move it away \
                 or give --identity another path",
                path.display()
            ),
            IdentityError::NotAFile { path, kind } => {
                write!(
                    f,
                    "{} {} is not a regular file",
                    kind.name(),
                    path.display()
                )
            }
            IdentityError::Io { path, doing, why } => {
                let doing = match doing {
                    Doing::Read => "read",
                    Doing::Create => "create",
                    Doing::MakeDir => "create the directory",
                };
                write!(f, "cannot {doing} {}: {why}", path.display())
            }
            IdentityError::Random(why) => {
                write!(f, "cannot get random bytes for an identity key: {why}")
            }
        }
    }
}

impl std::error::Error for IdentityError {}

/// `path` as a shell word: as it is when it holds only safe characters, else in single quotes.
pub(crate) fn shell_quoted(path: &Path) -> String {
    let text = path.to_string_lossy();
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:,@%".contains(c);
    if !text.is_empty() && text.chars().all(safe) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests;
