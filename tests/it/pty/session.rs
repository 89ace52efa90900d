//! The process side of the pty harness: a new pty, and starting a program on it as a shell
//! starts a job: a session whose controlling terminal is the pty, led by a small process that
//! only waits, with the program in a foreground process group of its own.
//!
//! Everything here between fork and exec is async-signal-safe. Must not read the screen.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Panics with `what` and the OS error when a libc call returned a negative value.
pub fn os_check(what: &str, r: libc::c_int) {
    assert!(r >= 0, "{what}: {}", io::Error::last_os_error());
}

/// A new pty of `cols` x `rows`: (master, slave), both close-on-exec.
pub fn open_pty(cols: u16, rows: u16) -> (OwnedFd, OwnedFd) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds we then own; the name and termios pointers may be null and
    // the winsize is read only.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    os_check("openpty", r);
    // SAFETY: both fds were just opened by openpty and belong to nothing else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // Another test's child forked now must not keep the pty open.
        // SAFETY: fcntl on an fd we own.
        os_check("FD_CLOEXEC", unsafe {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC)
        });
    }
    (master, slave)
}

/// Makes `cmd` start as a job of its own on the pty given as its stdin: in the forked child
/// before exec (fds 0-2 being the slave), a new session with the pty as its terminal, then a
/// second fork: the program goes on to exec in a foreground process group of its own, and the
/// first child stays as the session leader waiting for it. Only async-signal-safe calls.
pub fn become_session(cmd: &mut Command) {
    let hook = || {
        // SAFETY: only async-signal-safe libc calls on our own fds and pids, as pre_exec needs.
        unsafe {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            let pid = libc::fork();
            if pid < 0 {
                return Err(io::Error::last_os_error());
            }
            if pid == 0 {
                return foreground_job();
            }
            wait_as_leader(pid)
        }
    };
    // SAFETY: the hook only makes async-signal-safe calls (see above).
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// In the process about to exec peerchat: its own process group, made the terminal's
/// foreground one (SIGTTOU blocked meanwhile, as shells do).
unsafe fn foreground_job() -> io::Result<()> {
    let mut ttou: libc::sigset_t = std::mem::zeroed();
    let mut old: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut ttou);
    libc::sigaddset(&mut ttou, libc::SIGTTOU);
    if libc::setpgid(0, 0) < 0 {
        return Err(io::Error::last_os_error());
    }
    libc::sigprocmask(libc::SIG_BLOCK, &ttou, &mut old);
    let r = libc::tcsetpgrp(0, libc::getpid());
    libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The session leader: lets go of every inherited fd but the terminal (so `spawn` returns once
/// peerchat is exec'd, and no socket of the test stays open here), waits for peerchat and ends
/// as it ended.
unsafe fn wait_as_leader(pid: libc::pid_t) -> ! {
    if libc::close_range(3, libc::c_uint::MAX, 0) < 0 {
        for fd in 3..65_536 {
            libc::close(fd);
        }
    }
    // A hangup of the terminal is peerchat's to handle; the leader stays to pass on its status.
    libc::signal(libc::SIGHUP, libc::SIG_IGN);
    let mut status = 0;
    loop {
        let r = libc::waitpid(pid, &mut status, 0);
        if r == pid {
            break;
        }
        if r < 0 && *libc::__errno_location() != libc::EINTR {
            libc::_exit(1);
        }
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::signal(sig, libc::SIG_DFL);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }
    libc::_exit(libc::WEXITSTATUS(status))
}
