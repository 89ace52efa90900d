//! Process limits: the open-file limit, raised at start-up so a hub can hold thousands of
//! connections (each one is a file descriptor). Must not know about chat or sockets.

/// Connections a listening node should be able to hold before it warns that the open-file
/// limit is too low.
pub const WANT_FDS: u64 = 10_240;

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
}
