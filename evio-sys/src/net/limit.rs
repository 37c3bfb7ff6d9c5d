//! The descriptor limit (`RLIMIT_NOFILE`): every connection costs one fd, so
//! servers, load generators and tests raise it at start.

use std::io;

use nix::sys::resource::{getrlimit, rlim_t, setrlimit, Resource};

/// Apple refuses a soft limit above `kern.maxfilesperproc` (and
/// `RLIM_INFINITY`) with `EINVAL`; `OPEN_MAX` is always accepted.
#[cfg(evio_apple)]
const APPLE_OPEN_MAX: rlim_t = 10240;

fn to_rlim(n: u64) -> rlim_t {
    rlim_t::try_from(n).unwrap_or(rlim_t::MAX)
}

// `rlim_t` is `i64` on FreeBSD (never negative: RLIM_INFINITY is
// i64::MAX) and `u64` elsewhere.
#[allow(clippy::unnecessary_cast)]
fn from_rlim(n: rlim_t) -> u64 {
    n as u64
}

/// Raises the soft `RLIMIT_NOFILE` to `want` and returns the new soft limit
/// (never lowers it).
///
/// If `want` is above the hard limit, the hard limit is raised too when the
/// process may (root, or `CAP_SYS_RESOURCE` on Linux; the kernel still caps
/// it at `fs.nr_open`); otherwise the soft limit stops at the hard limit.
/// On Apple's systems it stops at `OPEN_MAX` (10240) where the kernel
/// refuses more. Pass `u64::MAX` for "as many as allowed".
///
/// ```
/// let soft = evio_sys::net::raise_fd_limit(4096)?;
/// assert!(soft >= 1); // 4096, or the hard limit if that is lower
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error of `getrlimit`/`setrlimit`.
pub fn raise_fd_limit(want: u64) -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let want = to_rlim(want);
    if want <= soft {
        return Ok(from_rlim(soft));
    }
    // Raising the hard limit needs privilege: try, then settle for it.
    if want > hard && setrlimit(Resource::RLIMIT_NOFILE, want, want).is_ok() {
        return Ok(from_rlim(want));
    }
    let target = want.min(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => Ok(from_rlim(target)),
        #[cfg(evio_apple)]
        Err(nix::errno::Errno::EINVAL) if target > APPLE_OPEN_MAX => {
            let target = APPLE_OPEN_MAX.max(soft);
            setrlimit(Resource::RLIMIT_NOFILE, target, hard)?;
            Ok(from_rlim(target))
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets the soft `RLIMIT_NOFILE` to exactly `soft` (at most the hard
/// limit); used to provoke and test descriptor exhaustion.
///
/// # Errors
/// The OS error of `getrlimit`/`setrlimit`.
pub fn set_fd_limit(soft: u64) -> io::Result<()> {
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    setrlimit(Resource::RLIMIT_NOFILE, to_rlim(soft).min(hard), hard)?;
    Ok(())
}
