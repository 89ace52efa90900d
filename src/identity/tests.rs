//! Tests of the identity files: the default path from the environment, creating and reusing
//! the key, refusing exposed or malformed files, two nodes creating the key at once, a run-only
//! key, and `known_keys` read and appended. Each test works in a directory of its own.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use super::*;
use crate::chat::KeyCheck;

/// A fresh directory, removed with everything in it on drop (also when the test fails).
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "peerchat-identity-{}-{n}-{tag}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Dir(path)
    }

    fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Root may write anywhere: permission tests do not apply.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn env(xdg: Option<&str>, home: Option<&str>) -> Env {
    Env {
        xdg_config_home: xdg.map(OsString::from),
        home: home.map(OsString::from),
    }
}

fn mode(path: &Path) -> u32 {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A key file with `text`, mode 0600, at `path`.
fn key_file(path: &Path, text: &str) {
    fs::write(path, text).expect("write");
    chmod(path, 0o600);
}

#[test]
fn the_default_path_is_under_xdg_config_home_else_home_dot_config() {
    let p = |xdg, home| default_path(&env(xdg, home));
    let want = |s: &str| Some(PathBuf::from(s));
    assert_eq!(p(Some("/x"), Some("/h")), want("/x/peerchat/identity"));
    assert_eq!(p(None, Some("/h")), want("/h/.config/peerchat/identity"));
    // Empty or relative values are not paths to use, as the XDG specification says.
    assert_eq!(
        p(Some(""), Some("/h")),
        want("/h/.config/peerchat/identity")
    );
    assert_eq!(
        p(Some("rel"), Some("/h")),
        want("/h/.config/peerchat/identity")
    );
    assert_eq!(p(Some("/x"), None), want("/x/peerchat/identity"));
    assert_eq!(p(None, None), None);
    assert_eq!(p(Some(""), Some("")), None);
    assert_eq!(p(None, Some("home")), None);
}

#[test]
fn known_keys_live_beside_the_identity_file() {
    assert_eq!(
        known_path(Path::new("/x/y/me.key")),
        PathBuf::from("/x/y/known_keys")
    );
    assert_eq!(known_path(Path::new("me.key")), PathBuf::from("known_keys"));
}

#[test]
fn the_first_run_creates_the_key_dir_0700_file_0600_and_the_next_reads_it_back() {
    let dir = Dir::new("first");
    let xdg = dir.join("config");
    let e = env(xdg.to_str(), Some("/nonexistent-home"));
    let first = load(None, &e).expect("first run");
    let path = xdg.join("peerchat/identity");
    assert_eq!(first.path.as_deref(), Some(path.as_path()));
    assert_eq!(first.known_path, Some(xdg.join("peerchat/known_keys")));
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    assert_eq!(mode(&xdg.join("peerchat")), 0o700);
    assert_eq!(mode(&path), 0o600);
    let text = fs::read_to_string(&path).expect("read");
    assert_eq!(text, encode(&first.key));
    assert!(text.starts_with("peerchat identity v1\n"), "{text:?}");
    assert_eq!(text.len(), "peerchat identity v1\n".len() + 65);

    let second = load(None, &e).expect("second run");
    assert_eq!(second.key.to_bytes(), first.key.to_bytes());
    assert_eq!(fs::read_to_string(&path).expect("read"), text);
    // Nothing else was left in the directory (no temporary file).
    let names: Vec<_> = fs::read_dir(xdg.join("peerchat"))
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(names, vec![OsString::from("identity")]);
}

#[test]
fn an_explicit_path_is_used_and_created_there() {
    let dir = Dir::new("explicit");
    let path = dir.join("a/b/me.key");
    let id = load(Some(&path), &env(None, None)).expect("load");
    assert_eq!(id.path.as_deref(), Some(path.as_path()));
    assert_eq!(id.known_path, Some(dir.join("a/b/known_keys")));
    assert!(id.warnings.is_empty());
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.join("a/b")), 0o700);
    let again = load_or_create_key(&path).expect("again");
    assert_eq!(again.to_bytes(), id.key.to_bytes());
}

#[test]
fn an_existing_key_file_is_read_as_written() {
    let dir = Dir::new("existing");
    let path = dir.join("identity");
    let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    key_file(&path, &format!("peerchat identity v1\n{seed}\n"));
    let key = load_or_create_key(&path).expect("load");
    assert_eq!(key.to_bytes()[..4], [0x9d, 0x61, 0xb1, 0x9d]);
    // The RFC 8032 test key: its public half is known.
    assert_eq!(
        key.verifying_key().to_bytes()[..4],
        [0xd7, 0x5a, 0x98, 0x01]
    );
    // Without the final newline too.
    key_file(&path, &format!("peerchat identity v1\n{seed}"));
    assert_eq!(
        load_or_create_key(&path).expect("load").to_bytes(),
        key.to_bytes()
    );
}

#[test]
fn a_key_file_others_may_read_or_write_is_refused_with_the_chmod_to_run() {
    let dir = Dir::new("exposed");
    let path = dir.join("identity");
    let key = load_or_create_key(&path).expect("create");
    for bad in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666] {
        chmod(&path, bad);
        let err = load_or_create_key(&path).expect_err("refused");
        assert_eq!(
            err,
            IdentityError::Exposed {
                path: path.clone(),
                mode: bad,
                kind: Kind::Identity
            }
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("chmod 600 {}", path.display())),
            "{text}"
        );
        assert!(text.contains(&format!("mode {bad:04o}")), "{text}");
        // Refused, not rewritten.
        assert_eq!(mode(&path), bad);
    }
    for fine in [0o600, 0o400] {
        chmod(&path, fine);
        let again = load_or_create_key(&path).expect("owner only");
        assert_eq!(again.to_bytes(), key.to_bytes());
    }
}

#[test]
fn the_chmod_advice_quotes_a_path_with_spaces() {
    let err = IdentityError::Exposed {
        path: PathBuf::from("/home/a b/it's"),
        mode: 0o644,
        kind: Kind::Identity,
    };
    assert_eq!(
        err.to_string(),
        "identity key /home/a b/it's is readable or writable by other users (mode 0644); \
         run: chmod 600 '/home/a b/it'\\''s'"
    );
}

#[test]
fn a_malformed_key_file_is_refused_and_left_as_it_is() {
    let dir = Dir::new("malformed");
    let path = dir.join("identity");
    let hex = "ab".repeat(32);
    let cases = [
        ("", "first line"),
        ("ssh-ed25519 AAAA\n", "first line"),
        ("peerchat identity v2\n{hex}\n", "first line"),
        ("peerchat identity v1\n", "64 lowercase hex"),
        ("peerchat identity v1\nabcd\n", "64 lowercase hex"),
        ("peerchat identity v1\n{HEX}\n", "64 lowercase hex"),
        ("peerchat identity v1\n{hex}0\n", "64 lowercase hex"),
        ("peerchat identity v1\n{hex}\nmore\n", "more than two lines"),
        ("peerchat identity v1\r\n{hex}\r\n", "first line"),
    ];
    for (template, why) in cases {
        let text = template
            .replace("{hex}", &hex)
            .replace("{HEX}", &hex.to_uppercase());
        key_file(&path, &text);
        let err = load_or_create_key(&path).expect_err(&text);
        let msg = err.to_string();
        assert!(matches!(err, IdentityError::Malformed { .. }), "{msg}");
        assert!(msg.contains(why), "{text:?}: {msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            text,
            "overwritten"
        );
    }
    fs::write(&path, [0xff, 0xfe, b'\n']).expect("write");
    chmod(&path, 0o600);
    assert!(load_or_create_key(&path)
        .expect_err("binary")
        .to_string()
        .contains("not text"));
    key_file(&path, &"x".repeat(5000));
    assert!(load_or_create_key(&path)
        .expect_err("large")
        .to_string()
        .contains("too large"));
}

#[test]
fn a_directory_where_the_key_should_be_is_refused() {
    let dir = Dir::new("isdir");
    let err = load_or_create_key(&dir.0).expect_err("a directory");
    assert_eq!(
        err.to_string(),
        format!("identity key {} is not a regular file", dir.0.display())
    );
}

#[test]
fn a_directory_that_cannot_be_made_is_one_clear_error() {
    let dir = Dir::new("nodir");
    let blocker = dir.join("file");
    key_file(&blocker, "not a directory");
    let err = load_or_create_key(&blocker.join("identity")).expect_err("under a file");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read {}/identity: not a directory",
            blocker.display()
        )
    );
    let err = load_or_create_key(&blocker.join("sub/identity")).expect_err("under a file");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read {}/sub/identity: not a directory",
            blocker.display()
        )
    );
    let dir_ro = dir.join("ro");
    fs::create_dir(&dir_ro).expect("mkdir");
    chmod(&dir_ro, 0o500);
    let err = load_or_create_key(&dir_ro.join("sub/identity"));
    chmod(&dir_ro, 0o700);
    if !is_root() {
        assert_eq!(
            err.expect_err("read-only").to_string(),
            format!(
                "cannot create the directory {}/sub: permission denied",
                dir_ro.display()
            )
        );
    }
}

#[test]
fn two_nodes_creating_the_key_at_once_end_with_one_key() {
    for round in 0..20 {
        let dir = Dir::new(&format!("race{round}"));
        let path = Arc::new(dir.join("peerchat/identity"));
        let start = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    load_or_create_key(&path).map(|k| k.to_bytes())
                })
            })
            .collect();
        let keys: Vec<_> = racers
            .into_iter()
            .map(|t| t.join().expect("no panic").expect("a key"))
            .collect();
        assert_eq!(keys[0], keys[1], "round {round}");
        let on_disk = load_or_create_key(&path).expect("read");
        assert_eq!(on_disk.to_bytes(), keys[0]);
        let entries = fs::read_dir(dir.join("peerchat")).expect("list").count();
        assert_eq!(entries, 1, "a temporary file was left behind");
    }
}

#[test]
fn with_no_home_and_no_xdg_and_no_path_the_key_is_for_this_run_only() {
    let a = load(None, &env(None, None)).expect("run-only");
    let b = load(None, &env(Some(""), Some(""))).expect("run-only");
    assert_eq!(a.path, None);
    assert_eq!(a.known_path, None);
    assert!(a.known.is_empty());
    assert_eq!(a.warnings, vec![RUN_ONLY.to_string()]);
    assert!(RUN_ONLY.contains("--identity"), "{RUN_ONLY}");
    assert_ne!(a.key.to_bytes(), b.key.to_bytes(), "a fresh key each run");
}

#[test]
fn known_keys_are_read_from_beside_the_key_and_appended_0600() {
    let dir = Dir::new("known");
    let path = dir.join("me.key");
    let id = load(Some(&path), &env(None, None)).expect("load");
    assert!(id.known.is_empty());
    let known_path = id.known_path.expect("kept");
    assert!(
        !known_path.exists(),
        "created only when a key is remembered"
    );

    let mut known = id.known;
    let fp = "3f9a:1c0d:8e7f:6a5b";
    let line = known.remember("bob", fp).expect("new");
    append_known(&known_path, &line).expect("append");
    assert_eq!(mode(&known_path), 0o600);
    let line = known.remember("ana", "0000:1111:2222:3333").expect("new");
    append_known(&known_path, &line).expect("append");
    assert_eq!(
        fs::read_to_string(&known_path).expect("read"),
        "bob 3f9a:1c0d:8e7f:6a5b\nana 0000:1111:2222:3333\n"
    );

    let next = load(Some(&path), &env(None, None)).expect("next run");
    assert_eq!(next.known, known);
    assert_eq!(next.known.check("BOB", fp), KeyCheck::Same);
}

#[test]
fn a_line_break_is_never_appended() {
    let dir = Dir::new("append");
    let path = dir.join(KNOWN_FILE);
    for bad in ["bob x\nmallory y", "bob\r"] {
        let err = append_known(&path, bad).expect_err(bad);
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
    assert!(!path.exists());
}

#[test]
fn a_known_keys_file_others_may_write_is_refused_one_they_may_read_is_not() {
    let dir = Dir::new("known-mode");
    let path = dir.join(KNOWN_FILE);
    fs::write(&path, "bob 3f9a:1c0d:8e7f:6a5b\n").expect("write");
    chmod(&path, 0o644);
    let (known, _) = read_known(&path).expect("readable by others is fine");
    assert_eq!(known.len(), 1);
    chmod(&path, 0o664);
    let err = read_known(&path).expect_err("group-writable");
    assert_eq!(
        err.to_string(),
        format!(
            "known keys file {} is writable by other users (mode 0664); run: chmod 600 {}",
            path.display(),
            path.display()
        )
    );
}

#[test]
fn a_large_known_keys_file_is_read_up_to_1_mib_in_whole_lines_with_a_warning() {
    let dir = Dir::new("known-large");
    let path = dir.join(KNOWN_FILE);
    let line = |i: usize| format!("n{i:06} 3f9a:1c0d:8e7f:6a5b\n");
    let per_line = line(0).len();
    let n = MAX_KNOWN_BYTES as usize / per_line + 10;
    // Padding so the 1 MiB cut falls in the middle of a line.
    let mut text = String::from("x");
    text.extend((0..n).map(line));
    fs::write(&path, &text).expect("write");
    chmod(&path, 0o600);
    let (known, warnings) = read_known(&path).expect("read");
    assert_eq!(known.len(), crate::chat::MAX_KNOWN);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("1024 KiB"), "{warnings:?}");
}

#[test]
fn a_line_cut_by_the_1_mib_cap_is_not_read_as_a_shorter_line() {
    let dir = Dir::new("known-cut");
    let path = dir.join(KNOWN_FILE);
    // Whole, this line is bad (three fields); cut after its fingerprint it would look good.
    let kept = "bob 3f9a:1c0d:8e7f:6a5b";
    let mut text = String::new();
    while text.len() + 1000 < MAX_KNOWN_BYTES as usize - kept.len() {
        text.push_str(&format!("{}\n", "#".repeat(999)));
    }
    let pad = MAX_KNOWN_BYTES as usize - kept.len() - text.len();
    text.push_str(&format!("{}\n", "#".repeat(pad - 1)));
    text.push_str(&format!("{kept} extra\n"));
    assert_eq!(text.find(" extra"), Some(MAX_KNOWN_BYTES as usize));
    fs::write(&path, &text).expect("write");
    chmod(&path, 0o600);
    let (known, warnings) = read_known(&path).expect("read");
    assert!(known.is_empty(), "{known:?}");
    assert_eq!(warnings.len(), 1);
}

#[test]
fn lines_of_known_keys_that_are_not_utf8_are_skipped_and_the_rest_read() {
    let dir = Dir::new("known-utf8");
    let path = dir.join(KNOWN_FILE);
    let mut bytes = b"bob 3f9a:1c0d:8e7f:6a5b\n".to_vec();
    bytes.extend_from_slice(b"b\xffb 3f9a:1c0d:8e7f:6a5b\n");
    bytes.extend_from_slice(b"ana 0000:1111:2222:3333\n");
    fs::write(&path, &bytes).expect("write");
    chmod(&path, 0o600);
    let (known, warnings) = read_known(&path).expect("read");
    assert!(warnings.is_empty());
    assert_eq!(known.len(), 2);
}
