//! `floor-server`: the floor reference — the least a server can do per
//! request on epoll, written out by hand so that the tables show where the
//! kernel's cost ends and a server's own begins.
//!
//! Usage: `floor-server --mode echo|redis|http --port N [--defer-accept]`
//! (127.0.0.1).
//!
//! One thread, one edge-triggered epoll. The listener has TCP_NODELAY set
//! once (Linux hands it down to accepted sockets: checked at start, set per
//! connection only where it is not); `accept4` is drained until EAGAIN;
//! each connection costs one `epoll_ctl(ADD)` and, at the end, one `close`
//! (no `epoll_ctl(DEL)`: closing the last descriptor removes it). Per
//! readiness: one read into a buffer shared by all connections, every
//! complete request in it answered with one write. `echo` writes back what
//! it read; `redis` answers `+PONG\r\n` to each request; `http` answers a
//! fixed `200 OK` "Hello World!" and closes after a request that asks for
//! `Connection: close`. A request split across reads waits in a small
//! per-connection carry buffer; a reply the socket cannot take waits in
//! another, with EPOLLOUT armed only then.
//!
//! `--defer-accept` sets `TCP_DEFER_ACCEPT` (1 s) on the listener, as
//! nginx's `listen … deferred` does: a connection is accepted once its first
//! bytes are in, read at once, and added to epoll only if it stays open
//! (a request answered with a close costs `accept4`, `recv`, `send`,
//! `close` and nothing else).
//!
//! It makes no raw system call itself: `nix`'s safe wrappers only. nix 0.29
//! gives accepted sockets as raw descriptors, so those are registered with
//! the raw-descriptor form of `epoll_ctl` and closed with `close`.
//!
//! Linux only (epoll): elsewhere it says so and exits with status 1.

#[cfg(target_os = "linux")]
#[path = "floor-server/linux.rs"]
mod linux;

evio_benches::linux_main!("floor-server", "epoll");
