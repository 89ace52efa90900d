//! What the operating system knows and the standard library does not tell: the open-file
//! limit, raised at start-up so a hub can hold thousands of connections (each one is a file
//! descriptor), and how many bytes a socket's kernel queue still holds. Must not know about
//! chat.

/// Connections a listening node should be able to hold before it warns that the open-file
/// limit is too low.
pub const WANT_FDS: u64 = 10_240;

/// Descriptors a listener keeps for itself (stdin, stdout, stderr, epoll, the waker, the
/// listener, the log file, refusing a connection politely) rather than for connections; a
/// quarter of the limit when that is less.
pub const RESERVED_FDS: u64 = 64;

/// The most the soft limit is raised to, when the hard limit is unlimited.
const CEILING: u64 = 1 << 20;

/// Raises the soft open-file limit (`ulimit -Sn`) to the hard one. Returns the limit in force
/// afterwards, or why it could not be read.
pub fn raise_fd_limit() -> Result<u64, String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(format!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        ));
    }
    let hard = if lim.rlim_max == libc::RLIM_INFINITY {
        CEILING
    } else {
        lim.rlim_max.min(CEILING)
    };
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < hard {
        let raised = libc::rlimit {
            rlim_cur: hard,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(hard);
        }
        log::debug!(
            "cannot raise the open-file limit to {hard}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(lim.rlim_cur)
}

/// Bytes written to socket `fd` that the other end has not taken yet (Linux `SIOCOUTQ`): when
/// this shrinks, the other end is reading, even while its buffers are still too full for us to
/// write more. `None` where the system cannot tell.
pub fn unsent_bytes(fd: std::os::fd::RawFd) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        let mut n: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int, which lives for the call; a bad or closed
        // descriptor makes it fail, not misbehave.
        if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) } == 0 {
            return usize::try_from(n).ok();
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let now = raise_fd_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, now);
        assert!(lim.rlim_cur == lim.rlim_max || lim.rlim_cur == CEILING);
    }

    #[test]
    fn unsent_bytes_counts_what_the_other_end_has_not_read() {
        use std::io::Write;
        use std::os::fd::AsRawFd;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (b, _) = listener.accept().unwrap();
        assert_eq!(unsent_bytes(a.as_raw_fd()), Some(0));
        a.set_nonblocking(true).unwrap();
        // Write until the kernel takes no more: the reader's buffers are full, and what is
        // left on our side shows as unsent.
        let chunk = vec![b'x'; 64 * 1024];
        let mut total = 0;
        for _ in 0..10_000 {
            match a.write(&chunk) {
                Ok(n) => total += n,
                Err(_) => break,
            }
        }
        let unsent = unsent_bytes(a.as_raw_fd()).unwrap();
        assert!(unsent > 0 && unsent <= total, "{unsent} of {total}");
        drop(b);
    }
}
