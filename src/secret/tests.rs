//! Tests of the group secret: generated secrets (strength, distinctness, read back in any
//! case and grouping), the passphrase's one form, the key derivation (pinned against the
//! reference `argon2` command-line tool, deterministic, its parameters), and loading from a
//! file or `PEERCHAT_SECRET` with each refusal. Each file test works in a directory of its own.

use std::collections::HashSet;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A fresh directory, removed with everything in it on drop (also when the test fails).
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("peerchat-secret-{}-{n}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Dir(path)
    }

    /// A file `name` holding `bytes`, with permission bits `mode`.
    fn file(&self, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, bytes).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Root may read anything: an unreadable file is not one for it.
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn no_env() -> Env {
    Env::default()
}

fn env(value: &str) -> Env {
    Env {
        peerchat_secret: Some(OsString::from(value)),
    }
}

fn text(s: &str) -> Secret {
    Secret::parse(s, Source::Text).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `result`'s error, whose message must be one line.
fn refused<T: fmt::Debug>(result: Result<T, SecretError>) -> (SecretError, String) {
    let e = result.expect_err("refused");
    let line = e.to_string();
    assert!(!line.contains(['\n', '\r']), "one line: {line:?}");
    (e, line)
}

const GENERATED_SHAPE: &str = "abcd-efgh-jkmn-pqrs-tvwx-yz01-2345";

#[test]
fn a_generated_secret_is_seven_groups_of_four_crockford_symbols_worth_140_bits() {
    let s = generate().expect("random bytes");
    let groups: Vec<&str> = s.split('-').collect();
    assert_eq!(groups.len(), 7, "{s}");
    assert!(groups.iter().all(|g| g.len() == GROUP), "{s}");
    assert!(s.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)), "{s}");
    // 5 bits a symbol: at least 128 bits.
    assert_eq!(ALPHABET.len(), 32);
    assert_eq!(ALPHABET.iter().collect::<HashSet<_>>().len(), 32);
    let symbols = s.bytes().filter(|&b| b != b'-').count();
    assert!(symbols * 5 >= 128, "{symbols} symbols: {s}");
    assert_eq!(s.len(), SYMBOLS + SYMBOLS / GROUP - 1);
    assert!(text(&s).is_generated());
}

#[test]
fn generated_secrets_are_distinct_and_use_every_symbol() {
    let many: Vec<String> = (0..200).map(|_| generate().expect("random")).collect();
    let distinct: HashSet<&String> = many.iter().collect();
    assert_eq!(distinct.len(), many.len());
    // 200 × 28 symbols: each of the 32 symbols turns up (a missing one would be a bias, like
    // a modulo that is not a divisor of 256); failing by chance is about 32·(31/32)^5600.
    let seen: HashSet<u8> = many.iter().flat_map(|s| s.bytes()).collect();
    for &b in ALPHABET {
        assert!(seen.contains(&b), "{} never drawn", char::from(b));
    }
}

#[test]
fn a_generated_secret_reads_back_in_any_case_with_or_without_dashes_or_spaces() {
    let s = generate().expect("random");
    let plain = s.replace('-', "");
    let spaced = s.replace('-', " ");
    let variants = [
        s.clone(),
        s.to_uppercase(),
        plain.clone(),
        plain.to_uppercase(),
        spaced.clone(),
        format!("  {}\r\n", spaced.to_uppercase()),
        // Split differently when read aloud or copied.
        format!("{}-{}", &plain[..10], &plain[10..]),
    ];
    for v in &variants {
        assert_eq!(text(v).as_str(), s, "{v:?}");
    }
    // Crockford's readings: i and l are one, o is zero.
    assert_eq!(
        text("ABCD-EFGH-JKMN-PQRS-TVWX-YZOI-2345").as_str(),
        "abcd-efgh-jkmn-pqrs-tvwx-yz01-2345"
    );
    assert_eq!(
        text("abcdefghjkmnpqrstvwxyzLl2345").as_str(),
        GENERATED_SHAPE.replace("01", "11")
    );
}

#[test]
fn a_chosen_passphrase_is_used_as_typed_but_for_surrounding_whitespace() {
    assert_eq!(text("Correct Horse").as_str(), "Correct Horse");
    assert_ne!(text("Correct Horse"), text("correct horse"));
    assert_ne!(text("correct horse"), text("correcthorse"));
    assert_ne!(text("a-b"), text("ab"));
    assert_eq!(text(" \tcorrect horse \r\n").as_str(), "correct horse");
    assert!(!text("correct horse").is_generated());
    // Not the generated shape: one symbol short, one too many, a `u`, other punctuation.
    let short = &GENERATED_SHAPE[..GENERATED_SHAPE.len() - 1];
    assert_eq!(text(&short.to_uppercase()).as_str(), short.to_uppercase());
    let long = format!("{GENERATED_SHAPE}6");
    assert_eq!(text(&long.to_uppercase()).as_str(), long.to_uppercase());
    let with_u = GENERATED_SHAPE.replace('a', "U");
    assert_eq!(text(&with_u).as_str(), with_u);
    let dotted = GENERATED_SHAPE.replace('-', ".").to_uppercase();
    assert_eq!(text(&dotted).as_str(), dotted);
}

#[test]
fn a_chosen_passphrase_is_put_in_nfc_so_composed_and_decomposed_letters_agree() {
    let composed = "caf\u{e9} au lait";
    let decomposed = "cafe\u{301} au lait";
    assert_eq!(text(decomposed).as_str(), composed);
    assert_eq!(text(composed), text(decomposed));
}

#[test]
fn an_empty_or_multi_line_passphrase_is_refused() {
    let (e, line) = refused(Secret::parse(" \r\n\t", Source::Text));
    assert_eq!(e, SecretError::Empty(Source::Text));
    assert!(line.contains("--new-secret"), "{line}");
    let (e, _) = refused(Secret::parse("one\ntwo", Source::EnvVar));
    assert_eq!(e, SecretError::MultiLine(Source::EnvVar));
    let (e, _) = refused(Secret::parse("one\rtwo", Source::EnvVar));
    assert_eq!(e, SecretError::MultiLine(Source::EnvVar));
}

#[test]
fn a_secret_does_not_show_in_debug() {
    let s = text("correct horse");
    assert!(!format!("{s:?}").contains("horse"));
    assert!(!format!("{:?}", env("correct horse")).contains("horse"));
}

#[test]
fn the_derivation_is_argon2id_64_mib_five_passes_one_lane_32_bytes() {
    let p = params();
    assert_eq!(p.m_cost(), 65536);
    assert_eq!(p.t_cost(), 5);
    assert_eq!(p.p_cost(), 1);
    assert_eq!(p.output_len(), Some(32));
    assert_eq!(SALT, b"peerchat group secret v1");
}

/// The reference implementation (Debian's `argon2` tool) gave these keys for
/// `echo -n PASSPHRASE | argon2 "peerchat group secret v1" -id -t 5 -m 16 -p 1 -l 32 -r`;
/// a change here splits groups between versions.
#[test]
fn the_derived_key_is_that_of_the_reference_argon2id() {
    assert_eq!(
        hex(&derive_psk("correct horse battery staple")),
        "5a635339bee1efde94ec73bf0db8780fd2f70909f17f7f991298151f6d98f1bd"
    );
    assert_eq!(
        hex(&text(&GENERATED_SHAPE.to_uppercase()).psk()),
        "090fcc93396da1661c87fd3f1e72e9fa9bc78ac1934f6230de4c25c1b651b288"
    );
}

/// The smallest parameters Argon2id allows (8 KiB, one pass), to test the derivation's other
/// properties quickly; reference keys from the `argon2` tool with `-t 1 -m 3`.
fn small(passphrase: &str) -> String {
    let p = Params::new(8, 1, 1, Some(PSK_LEN)).expect("small params");
    hex(&derive_with(p, passphrase))
}

#[test]
fn the_derivation_is_deterministic_and_differs_between_passphrases() {
    assert_eq!(
        small("x"),
        "3b899371ec1a1c0358d02f6fdf41d71ce515e730056d0d5d34bba17934bcd864"
    );
    assert_eq!(small("x"), small("x"));
    assert_eq!(
        small("y"),
        "bb932e6f2a1303f4bd40cd59c36b65229dd77f26e08f40fd5f4ee81bf230cfb0"
    );
    assert_ne!(small("x"), small("X"));
    // The passphrase in its one form, UTF-8 encoded.
    assert_eq!(
        small(text("cafe\u{301}").as_str()),
        "5908ccc8e2aaef233a08a9524e70cda653fd9d6d7a77878f0b3a3dbe7f1f3b04"
    );
    let real = derive_psk("correct horse battery staple");
    assert_eq!(real, derive_psk("correct horse battery staple"));
    assert_ne!(real, derive_psk("correct horse battery stapler"));
}

#[test]
fn a_file_only_its_owner_may_read_is_read() {
    let dir = Dir::new("owner");
    for mode in [0o600, 0o400] {
        let path = dir.file(&format!("s{mode:o}"), b"correct horse\n", mode);
        let s = load(Some(&path), &no_env())
            .expect("loaded")
            .expect("a secret");
        assert_eq!(s.as_str(), "correct horse", "mode {mode:o}");
    }
}

#[test]
fn a_file_others_may_read_or_write_is_refused_naming_chmod() {
    let dir = Dir::new("exposed");
    for mode in [0o644, 0o640, 0o604, 0o620, 0o602] {
        let path = dir.file("secret", b"correct horse\n", mode);
        let (e, line) = refused(load(Some(&path), &no_env()));
        assert_eq!(
            e,
            SecretError::Exposed {
                path: path.clone(),
                mode
            }
        );
        assert!(
            line.contains(&format!("chmod 600 {}", path.display())),
            "{line}"
        );
        assert!(line.contains(&format!("{mode:04o}")), "{line}");
    }
    // A path with a space is quoted for the shell.
    let path = dir.file("my secret", b"correct horse\n", 0o644);
    let (_, line) = refused(read_file(&path));
    assert!(
        line.contains(&format!("chmod 600 '{}'", path.display())),
        "{line}"
    );
}

#[test]
fn only_the_first_line_is_read_without_its_newline_or_cr() {
    let dir = Dir::new("lines");
    for (bytes, want) in [
        (&b"correct horse\n"[..], "correct horse"),
        (b"correct horse\r\n", "correct horse"),
        (b"correct horse", "correct horse"),
        (b"correct horse\nsecond line\n", "correct horse"),
        (b"  correct horse  \r\n", "correct horse"),
    ] {
        let path = dir.file("secret", bytes, 0o600);
        assert_eq!(read_file(&path).expect("read").as_str(), want, "{bytes:?}");
    }
    let path = dir.file("generated", b"ABCDEFGHJKMNPQRSTVWXYZ012345\r\n", 0o600);
    assert_eq!(read_file(&path).expect("read").as_str(), GENERATED_SHAPE);
}

#[test]
fn an_empty_file_or_first_line_is_refused() {
    let dir = Dir::new("empty");
    for bytes in [&b""[..], b"\n", b"  \r\n", b"\nthe secret on line two\n"] {
        let path = dir.file("secret", bytes, 0o600);
        let (e, line) = refused(read_file(&path));
        assert_eq!(
            e,
            SecretError::Empty(Source::File(path.clone())),
            "{bytes:?}"
        );
        assert!(line.contains(&path.display().to_string()), "{line}");
    }
}

#[test]
fn a_file_larger_than_4_kib_is_refused_and_4_kib_is_read() {
    let dir = Dir::new("large");
    let mut bytes = vec![b'a'; 4096];
    let path = dir.file("secret", &bytes, 0o600);
    assert_eq!(read_file(&path).expect("read").as_str().len(), 4096);
    bytes.push(b'\n');
    let path = dir.file("secret", &bytes, 0o600);
    let (e, line) = refused(read_file(&path));
    assert_eq!(e, SecretError::TooLarge(path));
    assert!(line.contains("4 KiB"), "{line}");
}

#[test]
fn a_file_not_text_not_regular_or_missing_is_refused() {
    let dir = Dir::new("odd");
    let path = dir.file("secret", b"caf\xe9\n", 0o600);
    let (e, _) = refused(read_file(&path));
    assert_eq!(e, SecretError::NotText(Source::File(path)));

    let (e, _) = refused(read_file(&dir.0));
    assert_eq!(e, SecretError::NotAFile(dir.0.clone()));

    let missing = dir.0.join("missing");
    let (e, line) = refused(read_file(&missing));
    assert!(matches!(e, SecretError::Io { .. }), "{e:?}");
    assert!(line.starts_with("cannot read group secret file"), "{line}");

    if !is_root() {
        let path = dir.file("unreadable", b"x\n", 0o200);
        let (e, _) = refused(read_file(&path));
        assert!(matches!(e, SecretError::Io { .. }), "{e:?}");
    }
}

#[test]
fn the_environment_variable_is_used_when_no_file_is_given() {
    assert_eq!(load(None, &no_env()), Ok(None));
    let s = load(None, &env("correct horse\n")).expect("loaded");
    assert_eq!(s.as_ref().map(Secret::as_str), Some("correct horse"));
    let (e, line) = refused(load(None, &env("")));
    assert_eq!(e, SecretError::Empty(Source::EnvVar));
    assert!(line.starts_with("PEERCHAT_SECRET is empty"), "{line}");
    let (e, _) = refused(load(None, &env("one\ntwo")));
    assert_eq!(e, SecretError::MultiLine(Source::EnvVar));
    let not_utf8 = Env {
        peerchat_secret: Some(std::os::unix::ffi::OsStringExt::from_vec(vec![0xff])),
    };
    let (e, _) = refused(load(None, &not_utf8));
    assert_eq!(e, SecretError::NotText(Source::EnvVar));
}

#[test]
fn a_file_and_the_environment_variable_together_are_refused() {
    let dir = Dir::new("both");
    let path = dir.file("secret", b"correct horse\n", 0o600);
    for value in ["correct horse", "another", ""] {
        let (e, line) = refused(load(Some(&path), &env(value)));
        assert_eq!(e, SecretError::Both(path.clone()));
        assert!(line.contains("unset PEERCHAT_SECRET"), "{line}");
    }
}

#[test]
fn every_error_is_one_line() {
    let p = PathBuf::from("/x/y");
    let all = [
        SecretError::Exposed {
            path: p.clone(),
            mode: 0o644,
        },
        SecretError::Empty(Source::File(p.clone())),
        SecretError::Empty(Source::EnvVar),
        SecretError::Empty(Source::Text),
        SecretError::MultiLine(Source::EnvVar),
        SecretError::NotText(Source::File(p.clone())),
        SecretError::TooLarge(p.clone()),
        SecretError::NotAFile(p.clone()),
        SecretError::Both(p.clone()),
        SecretError::Io {
            path: p,
            why: "no such file".into(),
        },
        SecretError::Random("no entropy".into()),
    ];
    for e in all {
        let line = e.to_string();
        assert!(!line.is_empty() && !line.contains(['\n', '\r']), "{line:?}");
    }
}

/// `cargo test --release --lib secret -- --ignored --nocapture`: how long one derivation
/// with the real parameters takes on this machine.
#[test]
#[ignore]
fn time_one_derivation() {
    let runs = 5;
    let mut times = Vec::new();
    for i in 0..runs {
        let start = std::time::Instant::now();
        std::hint::black_box(derive_psk(&format!("correct horse {i}")));
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "argon2id m={M_COST_KIB} KiB t={T_COST} p={P_COST}: min {:?}, median {:?}, max {:?} over {runs}",
        times[0],
        times[runs / 2],
        times[runs - 1]
    );
}
