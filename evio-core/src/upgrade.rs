//! Zero-downtime restarts: a running server hands its listening sockets to
//! a successor process over a unix socket, then drains.
//!
//! The running server listens for a successor with [`UpgradeSocket`] (on a
//! thread of its own: [`UpgradeSocket::serve`] blocks). The successor
//! connects with [`Successor::connect`], serves the sockets it got
//! ([`Builder::inherit`](crate::Builder::inherit)), then says so with
//! [`Successor::ready`]; only then does the old server stop accepting and
//! drain ([`EventHandler::on_drain`](crate::EventHandler::on_drain)). The
//! listening sockets stay open the whole time, so no connect is refused,
//! and connections queued in the kernel go to whichever process accepts
//! them first.
//!
//! The conversation, one frame each way at a time
//! ([`evio_sys::net::send_frame`], format version
//! [`HANDOVER_VERSION`](evio_sys::net::HANDOVER_VERSION)):
//!
//! 1. successor → server `H`: hello, its process id.
//! 2. server → successor `S`: the sockets (for each: stream or datagram,
//!    family, and the address it serves as the server was given it), the
//!    descriptors attached; or `E` and a reason when the server refuses.
//! 3. successor → server `R`: it serves the sockets now.
//! 4. server → successor `D`: the upgrade socket file is gone and the
//!    drain has begun; the server's process id. The successor may now
//!    listen on the same path for its own successor.
//!
//! Either side checks every frame; anything else (garbage, a wrong
//! descriptor count, a socket of another family or type than announced, a
//! peer of another user, silence past a timeout, a peer that dies halfway)
//! is an error, and the old server keeps serving as if nothing happened.
//! A second successor arriving meanwhile waits its turn; once one has
//! taken over, it finds the socket closed.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use evio_sys::net::{self, Addr, Frame, Inherited};

use crate::control::ServerControl;
use crate::shared::HandoverSocket;

const HELLO: u8 = b'H';
const SOCKETS: u8 = b'S';
const REFUSED: u8 = b'E';
const READY: u8 = b'R';
const DRAINING: u8 = b'D';

/// How long either side waits for the other's next frame, except the
/// server waiting for `R` ([`READY_TIMEOUT`]).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server waits for a successor to start serving.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often [`UpgradeSocket::serve`] looks whether the server stopped.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// The longest address name a socket may carry.
const MAX_NAME: usize = 1024;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

fn expect(frame: &Frame, kind: u8, what: &str) -> io::Result<()> {
    if frame.kind != kind {
        return Err(invalid(format!(
            "upgrade: expected {what}, got a frame of kind {:?}",
            frame.kind as char
        )));
    }
    if !frame.fds.is_empty() {
        return Err(invalid(format!("upgrade: descriptors sent with {what}")));
    }
    Ok(())
}

fn pid_of(frame: &Frame) -> io::Result<u32> {
    <[u8; 4]>::try_from(&frame.body[..])
        .map(u32::from_be_bytes)
        .map_err(|_| invalid("upgrade: a malformed process id"))
}

fn timeouts(stream: &UnixStream, read: Duration) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(read))?;
    stream.set_write_timeout(Some(STEP_TIMEOUT))
}

/// The family byte of a socket description: 4, 6, or 0 for unix.
fn family_of(addr: &Addr) -> u8 {
    match addr {
        Addr::Inet(a) if a.is_ipv4() => 4,
        Addr::Inet(_) => 6,
        Addr::Unix(_) => 0,
    }
}

/// The `S` body: a count, then per socket stream (1/0), family, name.
fn encode_sockets(list: &[HandoverSocket]) -> io::Result<Vec<u8>> {
    let mut body = (list.len() as u16).to_be_bytes().to_vec();
    for s in list {
        let family = family_of(&net::local_addr(&*s.fd)?);
        body.push(u8::from(s.stream));
        body.push(family);
        body.extend_from_slice(&(s.name.len() as u16).to_be_bytes());
        body.extend_from_slice(s.name.as_bytes());
    }
    Ok(body)
}

/// Checks an `S` frame against its descriptors, all or nothing: on an
/// error every descriptor is closed.
fn decode_sockets(frame: Frame) -> io::Result<Vec<Inherited>> {
    let body = &frame.body[..];
    let count = match body {
        [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
        _ => return Err(invalid("upgrade: a malformed socket list")),
    };
    if count != frame.fds.len() {
        return Err(invalid(format!(
            "upgrade: {count} sockets announced, {} descriptors sent",
            frame.fds.len()
        )));
    }
    let mut pos = 2;
    let mut out = Vec::with_capacity(count);
    for fd in frame.fds {
        let [stream, family, l0, l1] = *body
            .get(pos..pos + 4)
            .and_then(|h| <&[u8; 4]>::try_from(h).ok())
            .ok_or_else(|| invalid("upgrade: a truncated socket list"))?;
        pos += 4;
        let len = usize::from(u16::from_be_bytes([l0, l1]));
        let name = body
            .get(pos..pos + len)
            .filter(|n| !n.is_empty() && n.len() <= MAX_NAME)
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or_else(|| invalid("upgrade: a malformed socket name"))?
            .to_string();
        pos += len;
        let sock = Inherited::from_socket(fd, Some(name.clone()))
            .map_err(|e| invalid(format!("upgrade: the socket for {name:?}: {e}")))?;
        if sock.stream != (stream == 1) || stream > 1 || family_of(&sock.addr) != family {
            return Err(invalid(format!(
                "upgrade: the socket for {name:?} is a {} {} socket, not what was announced",
                if sock.stream { "stream" } else { "datagram" },
                sock.addr
            )));
        }
        if sock.stream && !net::is_listening(&sock.fd)? {
            return Err(invalid(format!(
                "upgrade: the socket for {name:?} is not listening"
            )));
        }
        out.push(sock);
    }
    if pos != body.len() {
        return Err(invalid("upgrade: bytes after the socket list"));
    }
    Ok(out)
}

/// The running server's side: a unix socket where a successor asks for
/// the listening sockets.
///
/// ```no_run
/// # #[derive(Clone)] struct H;
/// # impl evio_core::EventHandler for H { type Context = (); }
/// use std::time::Duration;
/// use evio_core::{upgrade::UpgradeSocket, Builder};
///
/// let server = Builder::new().start(H, &["tcp://:8080"])?;
/// let upgrades = UpgradeSocket::bind("/run/app/upgrade.sock")?;
/// let control = server.control().clone();
/// std::thread::spawn(move || upgrades.serve(&control, Duration::from_secs(30)));
/// server.wait()?; // returns once the successor took over and the drain ended
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct UpgradeSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
}

impl UpgradeSocket {
    /// Listens at `path` (mode 0600: only this user's processes, and root,
    /// may connect). A stale socket file is replaced.
    ///
    /// # Errors
    /// `AddrInUse` when a live server listens there already (the path
    /// then stays as it is), `AlreadyExists` for a path that is not a
    /// socket, or the OS error of `bind` (e.g. a missing directory).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UpgradeSocket> {
        let path = path.as_ref().to_path_buf();
        let fd = net::unix_listener(&path, 8).map_err(|e| {
            io::Error::new(e.kind(), format!("upgrade socket {}: {e}", path.display()))
        })?;
        let listener = UnixListener::from(fd);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        Ok(UpgradeSocket {
            listener: Some(listener),
            path,
        })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves successors, one at a time, until one takes over: then the
    /// socket file is removed, the server starts draining (as
    /// [`ServerControl::shutdown_gracefully`]`(drain_timeout)`), and this
    /// returns `Ok(true)`. Blocks: run it on a thread of its own. A
    /// successor that fails is logged (ERROR) and the server keeps
    /// serving; the next one is served. Returns `Ok(false)` when the
    /// server stops first.
    ///
    /// # Errors
    /// Only the OS error of a listener that cannot accept any more (not
    /// `EMFILE`, which is waited out).
    pub fn serve<C>(
        mut self,
        control: &ServerControl<C>,
        drain_timeout: Duration,
    ) -> io::Result<bool> {
        if let Some(listener) = &self.listener {
            listener.set_nonblocking(true)?;
        }
        loop {
            if control.is_shutting_down() {
                return Ok(false);
            }
            let Some(listener) = &self.listener else {
                return Ok(false);
            };
            let stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    std::thread::sleep(POLL_EVERY);
                    continue;
                }
                Err(e)
                    if net::is_out_of_fds(&e) || e.kind() == io::ErrorKind::ConnectionAborted =>
                {
                    tracing::warn!(error = %e, "evio: upgrade socket: accept failed; retrying");
                    std::thread::sleep(POLL_EVERY);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match self.hand_over(stream, control, drain_timeout) {
                Ok(pid) => {
                    tracing::info!(
                        successor = pid,
                        "evio: a successor serves the listening sockets; draining"
                    );
                    return Ok(true);
                }
                Err(e) => {
                    tracing::error!(error = %e, "evio: upgrade failed; still serving");
                }
            }
        }
    }

    /// One successor's conversation; returns its process id.
    fn hand_over<C>(
        &mut self,
        stream: UnixStream,
        control: &ServerControl<C>,
        drain_timeout: Duration,
    ) -> io::Result<u32> {
        timeouts(&stream, STEP_TIMEOUT)?;
        let uid = net::peer_uid(&stream)?;
        if uid != net::effective_uid() && uid != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("upgrade: a process of user {uid} asked for the sockets"),
            ));
        }
        let hello = net::recv_frame(&stream)?;
        expect(&hello, HELLO, "a hello")?;
        let pid = pid_of(&hello)?;
        let Some(list) = control.shared().handover_sockets() else {
            let why = "the server is stopping";
            let _ = net::send_frame(&stream, REFUSED, why.as_bytes(), &[]);
            return Err(io::Error::other(format!("upgrade: refused: {why}")));
        };
        let body = encode_sockets(&list)?;
        let fds: Vec<BorrowedFd<'_>> = list.iter().map(|s| s.fd.as_fd()).collect();
        net::send_frame(&stream, SOCKETS, &body, &fds)?;
        tracing::info!(
            successor = pid,
            sockets = list.len(),
            "evio: listening sockets sent to a successor"
        );
        stream.set_read_timeout(Some(READY_TIMEOUT))?;
        let ready = net::recv_frame(&stream).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("upgrade: successor {pid} did not start serving: {e}"),
            )
        })?;
        expect(&ready, READY, "ready")?;
        // The file goes first: the successor listens at the same path
        // once it hears `D`.
        self.close();
        control.shared().mark_handed_over();
        control.shutdown_gracefully(drain_timeout);
        let _ = net::send_frame(&stream, DRAINING, &std::process::id().to_be_bytes(), &[]);
        Ok(pid)
    }

    fn close(&mut self) {
        if self.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for UpgradeSocket {
    fn drop(&mut self) {
        self.close();
    }
}

/// The new process's side: takes the listening sockets from the server it
/// replaces.
///
/// Dropped without [`ready`](Successor::ready) (the new server failed to
/// start), it tells the old server nothing more: that one keeps serving.
/// See [`Builder::inherit`](crate::Builder::inherit) for a whole example.
#[derive(Debug)]
pub struct Successor {
    stream: UnixStream,
    sockets: Vec<Inherited>,
}

impl Successor {
    /// Connects to the running server's [`UpgradeSocket`] at `path` and
    /// takes its listening sockets, checked one by one.
    ///
    /// # Errors
    /// The OS error of `connect` when nothing listens at `path` (or
    /// another successor took over first); `InvalidData` for anything but
    /// a well-formed socket list whose descriptors are what it announces;
    /// `Other` with the server's reason when it refuses (it is stopping);
    /// `TimedOut` when it does not answer.
    pub fn connect(path: impl AsRef<Path>) -> io::Result<Successor> {
        let path = path.as_ref();
        let stream = UnixStream::connect(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("no server to take over at {}: {e}", path.display()),
            )
        })?;
        timeouts(&stream, STEP_TIMEOUT)?;
        net::send_frame(&stream, HELLO, &std::process::id().to_be_bytes(), &[])?;
        let frame = net::recv_frame(&stream).map_err(|e| {
            let gone = e.kind() == io::ErrorKind::UnexpectedEof
                || e.kind() == io::ErrorKind::ConnectionReset;
            let why = if gone {
                format!("{e} (another successor may have taken over)")
            } else {
                e.to_string()
            };
            io::Error::new(
                e.kind(),
                format!("taking over at {}: {why}", path.display()),
            )
        })?;
        let sockets = match frame.kind {
            SOCKETS => decode_sockets(frame)?,
            REFUSED => {
                return Err(io::Error::other(format!(
                    "the server at {} refused: {}",
                    path.display(),
                    String::from_utf8_lossy(&frame.body)
                )))
            }
            k => {
                return Err(invalid(format!(
                    "upgrade: expected the sockets, got a frame of kind {:?}",
                    k as char
                )))
            }
        };
        Ok(Successor { stream, sockets })
    }

    /// The sockets, for [`Builder::inherit`](crate::Builder::inherit)
    /// (taken once; later calls get none).
    pub fn take_sockets(&mut self) -> Vec<Inherited> {
        std::mem::take(&mut self.sockets)
    }

    /// Tells the old server that this one serves the sockets: it stops
    /// accepting and drains. Returns its process id once it has started.
    ///
    /// # Errors
    /// The old server went away or answered something else: it may or
    /// may not be draining (it is if its process is gone).
    pub fn ready(self) -> io::Result<u32> {
        net::send_frame(&self.stream, READY, &[], &[])?;
        let frame = net::recv_frame(&self.stream)?;
        expect(&frame, DRAINING, "the drain")?;
        pid_of(&frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;
    use std::sync::Arc;

    /// New references to the sockets, as a handover sends them.
    fn fds_of(list: &[HandoverSocket]) -> Vec<OwnedFd> {
        list.iter().map(|s| s.fd.try_clone().unwrap()).collect()
    }

    fn listener(addr: &str) -> HandoverSocket {
        let fd = net::tcp_listener(addr.parse().unwrap(), &net::BindOptions::default()).unwrap();
        HandoverSocket {
            name: format!("tcp://{addr}"),
            fd: Arc::new(fd),
            stream: true,
        }
    }

    fn frame(body: Vec<u8>, fds: Vec<OwnedFd>) -> Frame {
        Frame {
            kind: SOCKETS,
            body,
            fds,
        }
    }

    #[test]
    fn a_socket_list_round_trips() {
        let list = vec![listener("127.0.0.1:0"), listener("[::1]:0")];
        let got = decode_sockets(frame(encode_sockets(&list).unwrap(), fds_of(&list))).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name.as_deref(), Some("tcp://127.0.0.1:0"));
        assert!(got[1].addr.as_inet().unwrap().is_ipv6());
    }

    #[test]
    fn a_wrong_count_is_refused() {
        let list = vec![listener("127.0.0.1:0")];
        let body = encode_sockets(&list).unwrap();
        let mut two = fds_of(&list);
        two.extend(fds_of(&list));
        assert!(decode_sockets(frame(body.clone(), two)).is_err());
        assert!(decode_sockets(frame(body, Vec::new())).is_err());
    }

    #[test]
    fn a_socket_of_another_family_or_kind_is_refused() {
        let v4 = vec![listener("127.0.0.1:0")];
        let mut body = encode_sockets(&v4).unwrap();
        body[3] = 6; // announced as IPv6
        let e = decode_sockets(frame(body, fds_of(&v4))).unwrap_err();
        assert!(e.to_string().contains("not what was announced"), "{e}");
        // A datagram socket announced as a listener.
        let udp =
            net::udp_socket("127.0.0.1:0".parse().unwrap(), &net::BindOptions::default()).unwrap();
        let body = encode_sockets(&v4).unwrap();
        assert!(decode_sockets(frame(body, vec![udp])).is_err());
        // A stream socket that is not listening.
        let (a, _b) = UnixStream::pair().unwrap();
        let mut list = v4;
        list[0].fd = Arc::new(OwnedFd::from(a));
        let mut body = encode_sockets(&list).unwrap();
        body[3] = 0;
        let e = decode_sockets(frame(body, fds_of(&list))).unwrap_err();
        assert!(e.to_string().contains("not listening"), "{e}");
    }

    #[test]
    fn truncated_or_trailing_lists_are_refused() {
        let list = vec![listener("127.0.0.1:0")];
        let body = encode_sockets(&list).unwrap();
        for bad in [
            body[..body.len() - 1].to_vec(),
            [&body[..], b"x"].concat(),
            vec![0],
        ] {
            assert!(decode_sockets(frame(bad, fds_of(&list))).is_err());
        }
    }
}
