//! Socket calls an event loop needs, each a thin safe wrapper over nix
//! returning `io::Result` with the OS error code kept.
//!
//! Every socket made here is non-blocking and close-on-exec, and no write
//! can raise `SIGPIPE`: sends use `MSG_NOSIGNAL` where it exists and sockets
//! get `SO_NOSIGPIPE` on Apple's systems.
//!
//! ```
//! use evio_sys::net::{self, Addr, BindOptions};
//! let listener = net::tcp_listener("127.0.0.1:0".parse().unwrap(), &BindOptions::default())?;
//! let Addr::Inet(addr) = net::local_addr(&listener)? else { unreachable!() };
//! assert_ne!(addr.port(), 0);
//! # Ok::<(), std::io::Error>(())
//! ```

mod activation;
mod addr;
mod handover;
mod io;
mod limit;
mod opts;
mod socket;

pub use activation::{take_activation_sockets, Inherited};
pub use addr::{local_addr, peer_addr, Addr};
pub use handover::{
    effective_uid, is_listening, peer_uid, recv_frame, send_frame, Frame, HANDOVER_VERSION,
    MAX_FRAME_BODY, MAX_FRAME_FDS,
};
pub use io::{
    has_input, is_family_unsupported, is_out_of_fds, read, recv_from, send_to, shutdown, write,
    writev, Shutdown,
};
pub use limit::{raise_fd_limit, set_fd_limit};
pub use opts::{
    defer_accept, keepalive, keepalive_probes, linger, nodelay, recv_buffer_size, send_buffer_size,
    set_defer_accept, set_keepalive, set_keepalive_probes, set_linger, set_nodelay,
    set_recv_buffer_size, set_send_buffer_size, socket_type, take_error,
};
pub use socket::{
    accept, is_open, set_nonblocking, tcp_connect, tcp_listener, udp_socket, unix_connect,
    unix_listener, BindOptions,
};
