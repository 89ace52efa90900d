//! What the process benchmarks (`fanout`, `idle`) share: which peerchat binary to run
//! (`PEERCHAT_BIN`) and starting it as a hub, a process's CPU time and memory from `/proc`, the
//! open-file limit, and a child process that is killed when dropped. Must not measure or print
//! anything itself: each benchmark decides what its figures are.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread;

/// Linux's clock ticks per second for `/proc/PID/stat` times.
const TICKS_PER_SEC: f64 = 100.0;

/// The peerchat binary to run: `$PEERCHAT_BIN` when set and not empty (so that two builds,
/// say before and after a change, can be measured by the same benchmark code), else the one
/// cargo built with this benchmark.
pub fn peerchat_bin() -> OsString {
    std::env::var_os("PEERCHAT_BIN")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_peerchat").into())
}

/// A child process that is killed and reaped when dropped, so that a benchmark that fails
/// half-way leaves no hub or peer running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CPU time of every thread of `pid`, in seconds, to the nanosecond (`/proc/PID/task/*/schedstat`,
/// whose first field is time on a CPU); `/proc/PID/stat`'s 10 ms ticks when that is missing.
pub fn cpu_secs(pid: u32) -> f64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
    let mut nanos = 0u64;
    let mut found = false;
    for task in tasks.into_iter().flatten().flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        if let Some(v) = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            nanos += v;
            found = true;
        }
    }
    if found {
        return nanos as f64 / 1e9;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / TICKS_PER_SEC
}

/// A number field of `/proc/PID/status` (`VmRSS:`, `VmHWM:` in KiB, `voluntary_ctxt_switches:`
/// of the main thread), 0 when it cannot be read.
pub fn status_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Raises this process's soft open-file limit to the hard one (the benchmark holds one
/// descriptor per connection, as the hub does; the hub raises its own) with the same code the
/// hub uses; returns the soft limit now in force (0 if it cannot be read).
pub fn raise_fd_limit() -> u64 {
    peerchat::limits::raise_fd_limit().unwrap_or(0)
}

/// Starts a peerchat hub on an ephemeral loopback port (`-l 127.0.0.1:0 -q --keep-open --nick
/// hub --rate-limit 0 --max-guests-per-ip 0`, then `extra`): a benchmark's sender is a guest
/// sending as fast as it can, so no flood limit, and its thousands of guests all come from
/// 127.0.0.1. Returns it and its port, read from its first line (`listening on ADDR`); its
/// stdout is kept drained, its warnings go to the report (stderr).
pub fn start_peerchat_hub(extra: &[&str]) -> Result<(Killed, u16), String> {
    let mut child = Command::new(peerchat_bin())
        .args(["-l", "127.0.0.1:0", "-q", "--keep-open", "--nick", "hub"])
        .args(["--rate-limit", "0"])
        .args(no_guest_limit_per_ip())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start peerchat: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let hub = Killed(child);
    let mut lines = BufReader::new(stdout);
    let mut first = String::new();
    lines
        .read_line(&mut first)
        .map_err(|e| format!("peerchat said nothing: {e}"))?;
    let port = first
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no port in {first:?}"))?;
    thread::spawn(move || io::copy(&mut lines, &mut io::sink()));
    Ok((hub, port))
}

/// `--max-guests-per-ip 0` if the binary knows it: one built before it (`compare.sh`'s
/// BEFORE_BIN) would refuse the option, and had no such limit anyway.
fn no_guest_limit_per_ip() -> &'static [&'static str] {
    let help = Command::new(peerchat_bin()).arg("--help").output();
    match help {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("--max-guests-per-ip") => {
            &["--max-guests-per-ip", "0"]
        }
        _ => &[],
    }
}
