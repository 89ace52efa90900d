//! The identity key on disk, as a person meets it: made at the first run in the XDG config
//! directory (mode 0600) and used again unchanged, chosen with `--identity`, refused with one
//! clear line when others may read it or when it is not a key, and a key for this run only
//! (with a warning) when there is nowhere to keep one.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::util::{self, bin, Node, TempDir};

/// A listener on an ephemeral port started by `cmd`; waits until it listens.
fn listening(cmd: &mut Command) -> Node {
    let mut node = Node::spawn_with(cmd.args(["-l", "127.0.0.1:0", "--json", "--nick", "ana"]));
    node.wait_event(|v| {
        v["event"] == "info" && v["text"].as_str().unwrap_or("").starts_with("listening on")
    });
    node
}

/// Runs `peerchat -l 127.0.0.1:0 ARGS` to its end, with `XDG_CONFIG_HOME` at `config`.
fn run_to_end(config: &Path, args: &[&str]) -> Output {
    let _spawning = util::spawning();
    Command::new(bin())
        .args(["-l", "127.0.0.1:0", "--nick", "ana"])
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run peerchat")
}

fn mode(path: &Path) -> u32 {
    let meta = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o777
}

/// What identifies a file's content and its version on disk.
fn stamp(path: &Path) -> (Vec<u8>, u64, i64, i64) {
    let meta = fs::metadata(path).expect("metadata");
    let bytes = fs::read(path).expect("read");
    (bytes, meta.ino(), meta.mtime(), meta.mtime_nsec())
}

#[test]
fn the_first_run_makes_a_0600_key_in_the_config_dir_and_the_next_run_uses_it_unchanged() {
    let config = TempDir::new("xdg");
    let key = config.0.join("peerchat/identity");
    let mut first = listening(Command::new(bin()).env("XDG_CONFIG_HOME", &config.0));
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&config.0.join("peerchat")), 0o700);
    let text = fs::read_to_string(&key).expect("read the key");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert_eq!(lines[0], "peerchat identity v1");
    assert_eq!(lines[1].len(), 64);
    assert!(lines[1]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    first.close_stdin();
    assert_eq!(first.wait_exit().code(), Some(0));
    let before = stamp(&key);

    let mut second = listening(Command::new(bin()).env("XDG_CONFIG_HOME", &config.0));
    second.close_stdin();
    assert_eq!(second.wait_exit().code(), Some(0));
    assert_eq!(stamp(&key), before, "the key file was rewritten");
    assert!(second.stderr_lines().is_empty());
}

#[test]
fn identity_path_chooses_the_key_file_and_nothing_goes_to_the_config_dir() {
    let config = TempDir::new("xdg");
    let dir = TempDir::new("keys");
    let key = dir.0.join("sub/me.key");
    let key_arg = key.to_str().expect("UTF-8");
    let mut node = listening(
        Command::new(bin())
            .env("XDG_CONFIG_HOME", &config.0)
            .args(["--identity", key_arg]),
    );
    assert_eq!(mode(&key), 0o600);
    assert!(
        !config.0.join("peerchat").exists(),
        "made a key in the config dir too"
    );
    node.close_stdin();
    assert_eq!(node.wait_exit().code(), Some(0));
    let before = stamp(&key);
    let out = run_to_end(&config.0, &["--identity", key_arg]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stamp(&key), before);
}

#[test]
fn a_key_others_may_read_is_refused_with_one_line_naming_the_chmod_and_nothing_listens() {
    let config = TempDir::new("xdg");
    let key = config.0.join("peerchat/identity");
    let first = run_to_end(&config.0, &[]);
    assert_eq!(first.status.code(), Some(0), "{first:?}");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).expect("chmod");
    let before = stamp(&key);

    let out = run_to_end(&config.0, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let shown = key.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "peerchat: identity key {shown} is readable or writable by other users (mode \
             0644); run: chmod 600 {shown}\n"
        )
    );
    assert!(out.stdout.is_empty(), "it listened: {out:?}");
    assert_eq!(stamp(&key), before, "the key was touched");
}

#[test]
fn a_file_that_is_not_a_key_is_refused_with_one_line_and_left_as_it_is() {
    let config = TempDir::new("xdg");
    let dir = TempDir::new("keys");
    let key = dir.0.join("id_ed25519");
    fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\n").expect("write");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = run_to_end(&config.0, &["--identity", key.to_str().expect("UTF-8")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "peerchat: {} is not a peerchat identity key",
            key.display()
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "it listened: {out:?}");
    assert_eq!(
        fs::read_to_string(&key).expect("read"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    );
}

#[test]
fn with_nowhere_to_keep_a_key_it_runs_with_one_for_this_run_and_says_so() {
    let mut cmd = Command::new(bin());
    cmd.env_remove("XDG_CONFIG_HOME").env_remove("HOME");
    let mut node = listening(&mut cmd);
    node.close_stdin();
    assert_eq!(node.wait_exit().code(), Some(0));
    let err = node.stderr_lines().join("\n");
    assert!(err.contains("for this run only"), "{err}");
    assert!(err.contains("--identity PATH"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn test_nodes_get_a_config_dir_of_their_own() {
    let a = listening(&mut Command::new(bin()));
    let b = listening(&mut Command::new(bin()));
    let (a_dir, b_dir) = (a.config_dir(), b.config_dir());
    assert_ne!(a_dir, b_dir);
    for dir in [a_dir, b_dir] {
        let dir = dir.expect("a config dir");
        assert!(dir.starts_with(std::env::temp_dir()), "{}", dir.display());
        assert_eq!(mode(&dir.join("peerchat/identity")), 0o600);
    }
}

/// `alice`'s `/names` entry for `nick`.
fn names_entry(alice: &mut Node, nick: &str) -> serde_json::Value {
    alice.send("/names");
    let names = alice.wait_event(|v| v["event"] == "names");
    names["names"]
        .as_array()
        .and_then(|list| list.iter().find(|n| n["nick"] == nick))
        .cloned()
        .unwrap_or_else(|| panic!("no {nick} in {names}"))
}

/// Remembered keys, as SSH's known_hosts: the first key seen for `bob` is kept in alice's
/// config directory, and a later `bob` with another key is shown with a warning on every
/// message and in `/names` — also after alice restarts — while the first key is never warned
/// about.
#[test]
fn a_nick_back_with_another_key_is_warned_about_on_every_message_and_in_names() {
    let keys = TempDir::new("bob-keys");
    let first = keys.0.join("first");
    let second = keys.0.join("second");
    let [first, second] = [&first, &second].map(|p| p.to_str().expect("utf-8 path").to_string());
    let (mut alice, port) = Node::listener("alice", &[]);

    let mut bob = Node::client("bob", port, &["--identity", &first]);
    bob.wait_join("alice");
    bob.send("the first bob");
    alice.wait_message("bob", "the first bob");
    let known = names_entry(&mut alice, "bob");
    assert!(
        known["key"].is_string() && known["key_was"].is_null(),
        "{known}"
    );
    bob.send("/quit");
    alice.wait_leave("bob");

    let mut other = Node::client("bob", port, &["--identity", &second]);
    other.wait_join("alice");
    for text in ["it is me, really", "send me the file"] {
        other.send(text);
        alice.wait_message("bob (key changed!)", text);
    }
    let changed = names_entry(&mut alice, "bob");
    assert_ne!(changed["key"], known["key"], "{changed}");
    assert_eq!(changed["key_was"], known["key"], "{changed}");
    other.send("/quit");
    alice.wait_leave("bob");

    // alice restarts with the same config directory: the first key is still the one she knows.
    let config = alice
        .config_dir()
        .expect("alice's config dir")
        .to_path_buf();
    alice.send("/quit");
    alice.wait_exit();
    let mut cmd = Command::new(bin());
    cmd.env("XDG_CONFIG_HOME", &config);
    let mut alice = Node::spawn_with(cmd.args(["-l", "127.0.0.1:0", "--json", "--nick", "alice"]));
    let ev = alice.wait_event(|v| {
        v["event"] == "info" && v["text"].as_str().unwrap_or("").starts_with("listening on")
    });
    let port: u16 = ev["text"]
        .as_str()
        .and_then(|t| t.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    let mut other = Node::client("bob", port, &["--identity", &second]);
    other.wait_join("alice");
    other.send("after the restart");
    alice.wait_message("bob (key changed!)", "after the restart");
    other.send("/quit");
    alice.wait_leave("bob");
    let mut bob = Node::client("bob", port, &["--identity", &first]);
    bob.wait_join("alice");
    bob.send("the first key again");
    alice.wait_message("bob", "the first key again");
}
