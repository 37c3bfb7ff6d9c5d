//! Passing descriptors to another process: one framed message over a unix
//! stream socket, the descriptors attached with `SCM_RIGHTS`.
//!
//! A frame is a 12-byte header — the magic `EVIO`, the format version, a
//! kind byte, two zero bytes, the body's length (u32, big-endian) — then
//! the body. Descriptors ride on the frame's first byte. The receiver
//! checks every field before it looks at the body, takes every descriptor
//! that arrives (so none leaks into this process unowned, even from a
//! peer sending garbage) and marks them close-on-exec as they arrive.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, sockopt, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr,
};

/// The frame format's version; a frame of another version is refused.
pub const HANDOVER_VERSION: u8 = 1;
/// The most descriptors one frame may carry.
pub const MAX_FRAME_FDS: usize = 64;
/// The longest body a frame may have.
pub const MAX_FRAME_BODY: usize = 64 * 1024;

const MAGIC: &[u8; 4] = b"EVIO";
const HEADER: usize = 12;
/// Room for Linux's per-message limit (`SCM_MAX_FD`), so that a peer
/// sending more than [`MAX_FRAME_FDS`] cannot truncate the control data
/// (which would leave descriptors in this process that no one owns).
const CMSG_FDS: usize = 253;

/// A received frame.
#[derive(Debug)]
pub struct Frame {
    /// The kind byte (what the body means is the protocol's business).
    pub kind: u8,
    /// The body.
    pub body: Vec<u8>,
    /// The descriptors that came with it, owned and close-on-exec.
    pub fds: Vec<OwnedFd>,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// A read timeout shows as `EAGAIN` on a blocking socket.
fn timed_out(e: Errno) -> io::Error {
    if e == Errno::EAGAIN {
        io::Error::new(io::ErrorKind::TimedOut, "the peer sent nothing in time")
    } else {
        e.into()
    }
}

/// Sends one frame on the unix stream socket `stream` (blocking; a write
/// timeout set on it applies), with `fds` attached.
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use std::os::fd::AsFd;
/// use evio_sys::net::{recv_frame, send_frame};
/// let (a, b) = UnixStream::pair()?;
/// let file = std::fs::File::open("/dev/null")?;
/// send_frame(&a, b'X', b"hello", &[file.as_fd()])?;
/// let f = recv_frame(&b)?;
/// assert_eq!((f.kind, &f.body[..], f.fds.len()), (b'X', &b"hello"[..], 1));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// `InvalidInput` for more than [`MAX_FRAME_FDS`] descriptors or a body
/// over [`MAX_FRAME_BODY`]; the OS error of `sendmsg` (`EPIPE` when the
/// peer is gone, `EAGAIN` after a write timeout).
pub fn send_frame(
    stream: &impl AsFd,
    kind: u8,
    body: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    if fds.len() > MAX_FRAME_FDS || body.len() > MAX_FRAME_BODY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large to hand over",
        ));
    }
    let mut header = [0u8; HEADER];
    header[..4].copy_from_slice(MAGIC);
    header[4] = HANDOVER_VERSION;
    header[5] = kind;
    header[8..].copy_from_slice(&(body.len() as u32).to_be_bytes());
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = if raw.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(&raw)]
    };
    let fd = stream.as_fd().as_raw_fd();
    let flags = FLAGS.0;
    let mut sent = sendmsg::<UnixAddr>(
        fd,
        &[IoSlice::new(&header), IoSlice::new(body)],
        &cmsgs,
        flags,
        None,
    )?;
    // What a short send left goes without descriptors (they went with the
    // first byte).
    let total = HEADER + body.len();
    while sent < total {
        let (h, b) = if sent < HEADER {
            (&header[sent..], body)
        } else {
            (&[][..], &body[sent - HEADER..])
        };
        match sendmsg::<UnixAddr>(fd, &[IoSlice::new(h), IoSlice::new(b)], &[], flags, None) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The flags of `sendmsg` and `recvmsg`: no SIGPIPE, received descriptors
/// close-on-exec as they arrive. Apple's systems have neither flag (std
/// ignores SIGPIPE in Rust binaries; descriptors are marked afterwards).
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
const FLAGS: (MsgFlags, MsgFlags) = (MsgFlags::MSG_NOSIGNAL, MsgFlags::MSG_CMSG_CLOEXEC);
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
const FLAGS: (MsgFlags, MsgFlags) = (MsgFlags::empty(), MsgFlags::empty());

/// Reads into `buf` once, taking ownership of every descriptor that came
/// with the bytes. Returns the byte count (0: the peer closed).
fn recv_some(stream: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<usize> {
    let mut cmsg = nix::cmsg_space!([RawFd; CMSG_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<UnixAddr>(stream, &mut iov, Some(&mut cmsg), FLAGS.1) {
            Err(Errno::EINTR) => continue,
            r => break r.map_err(timed_out)?,
        }
    };
    let cmsgs = msg
        .cmsgs()
        .map_err(|_| invalid("handover: control data truncated"))?;
    for c in cmsgs {
        if let ControlMessageOwned::ScmRights(list) = c {
            for raw in list {
                // SAFETY: the kernel just installed `raw` in this process
                // for this message; nothing else knows the number, so this
                // is its only owner.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    for fd in fds.iter() {
        crate::fd::set_cloexec(fd)?;
    }
    Ok(msg.bytes)
}

/// Reads exactly `buf.len()` bytes, collecting descriptors.
fn recv_exact(stream: RawFd, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match recv_some(stream, &mut buf[got..], fds)? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "handover: the peer closed the connection mid-frame",
                ))
            }
            n => got += n,
        }
    }
    Ok(())
}

/// Receives one frame from the unix stream socket `stream` (blocking; a
/// read timeout set on it applies). Descriptors that arrive with a frame
/// that is refused are closed.
///
/// # Errors
/// `UnexpectedEof` when the peer closes first; `InvalidData` for a frame
/// with the wrong magic or version, a body over [`MAX_FRAME_BODY`], more
/// than [`MAX_FRAME_FDS`] descriptors, or descriptors anywhere but on the
/// first byte; `TimedOut` after a read timeout; the OS error of `recvmsg`.
pub fn recv_frame(stream: &impl AsFd) -> io::Result<Frame> {
    let fd = stream.as_fd().as_raw_fd();
    let mut fds = Vec::new();
    let mut header = [0u8; HEADER];
    let first = recv_some(fd, &mut header, &mut fds)?;
    if first == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "handover: the peer closed the connection",
        ));
    }
    let attached = fds.len();
    recv_exact(fd, &mut header[first..], &mut fds)?;
    if &header[..4] != MAGIC {
        return Err(invalid("handover: not an evio handover frame"));
    }
    if header[4] != HANDOVER_VERSION {
        return Err(invalid(format!(
            "handover: frame version {} (this build speaks {HANDOVER_VERSION})",
            header[4]
        )));
    }
    if header[6..8] != [0, 0] {
        return Err(invalid("handover: reserved header bytes are not zero"));
    }
    let len = u32::from_be_bytes([header[8], header[9], header[10], header[11]]) as usize;
    if len > MAX_FRAME_BODY {
        return Err(invalid(format!(
            "handover: a body of {len} bytes (at most {MAX_FRAME_BODY})"
        )));
    }
    let mut body = vec![0u8; len];
    recv_exact(fd, &mut body, &mut fds)?;
    if fds.len() != attached {
        return Err(invalid("handover: descriptors after a frame's first byte"));
    }
    if fds.len() > MAX_FRAME_FDS {
        return Err(invalid(format!(
            "handover: {} descriptors (at most {MAX_FRAME_FDS})",
            fds.len()
        )));
    }
    Ok(Frame {
        kind: header[5],
        body,
        fds,
    })
}

/// Whether the stream socket `fd` is listening (`SO_ACCEPTCONN`).
///
/// ```
/// use evio_sys::net::{self, BindOptions};
/// let l = net::tcp_listener("127.0.0.1:0".parse().unwrap(), &BindOptions::default())?;
/// assert!(net::is_listening(&l)?);
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error of `getsockopt` (`ENOTSOCK` for a descriptor that is not
/// a socket).
pub fn is_listening(fd: &impl AsFd) -> io::Result<bool> {
    Ok(getsockopt(fd, sockopt::AcceptConn)?)
}

/// The user id of the process at the other end of the unix socket
/// `stream` (`SO_PEERCRED` on Linux, `getpeereid` elsewhere).
///
/// ```
/// use std::os::unix::net::UnixStream;
/// let (a, _b) = UnixStream::pair()?;
/// assert_eq!(evio_sys::net::peer_uid(&a)?, evio_sys::net::effective_uid());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The OS error (`ENOTCONN` for an unconnected socket).
pub fn peer_uid(stream: &impl AsFd) -> io::Result<u32> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        Ok(getsockopt(stream, sockopt::PeerCredentials)?.uid())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (uid, _) = nix::unistd::getpeereid(stream.as_fd())?;
        Ok(uid.as_raw())
    }
}

/// This process's effective user id (to compare with [`peer_uid`]).
///
/// ```
/// assert_eq!(evio_sys::net::effective_uid(), nix::unistd::geteuid().as_raw());
/// ```
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn pair() -> (UnixStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (a, b)
    }

    #[test]
    fn frame_round_trip_with_descriptors() {
        let (a, b) = pair();
        let (x, _y) = UnixStream::pair().unwrap();
        send_frame(&a, b'S', &[7; 300], &[x.as_fd(), x.as_fd()]).unwrap();
        let f = recv_frame(&b).unwrap();
        assert_eq!(f.kind, b'S');
        assert_eq!(f.body, vec![7; 300]);
        assert_eq!(f.fds.len(), 2);
        for fd in &f.fds {
            let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap();
            assert_ne!(
                flags & libc::FD_CLOEXEC,
                0,
                "received descriptors are close-on-exec"
            );
        }
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            &b"EVIO\x02S\0\0\0\0\0\0"[..],
            &b"EVIO\x01S\x01\0\0\0\0\0"[..],
            &b"EVIO\x01S\0\0\xff\xff\xff\xff"[..],
        ] {
            let (mut a, b) = pair();
            a.write_all(bad).unwrap();
            let e = recv_frame(&b).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}: {e}");
        }
    }

    #[test]
    fn short_or_silent_peers_are_errors() {
        let (mut a, b) = pair();
        a.write_all(b"EVIO\x01").unwrap();
        drop(a);
        assert_eq!(
            recv_frame(&b).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let (_a, b) = pair();
        b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        assert_eq!(recv_frame(&b).unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn too_many_descriptors_are_refused_and_closed() {
        let (a, b) = pair();
        let file = std::fs::File::open("/dev/null").unwrap();
        let many: Vec<RawFd> = vec![file.as_raw_fd(); MAX_FRAME_FDS + 1];
        let header = *b"EVIO\x01S\0\0\0\0\0\0";
        sendmsg::<UnixAddr>(
            a.as_raw_fd(),
            &[IoSlice::new(&header)],
            &[ControlMessage::ScmRights(&many)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let e = recv_frame(&b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }

    #[test]
    fn oversized_frames_are_not_sent() {
        let (a, _b) = pair();
        let big = vec![0; MAX_FRAME_BODY + 1];
        assert_eq!(
            send_frame(&a, b'S', &big, &[]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
