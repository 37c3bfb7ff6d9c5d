//! `take_activation_sockets` with what a broken or foreign service manager
//! may leave in the environment. One test (its own process): the
//! environment is process-wide. No descriptor is touched: none is passed.

use std::io;

use evio_sys::net::take_activation_sockets;

#[test]
fn foreign_or_garbage_variables_pass_nothing_and_are_consumed() {
    // For another process: ignored, and removed.
    std::env::set_var("LISTEN_PID", "1");
    std::env::set_var("LISTEN_FDS", "2");
    assert!(take_activation_sockets().unwrap().is_empty());
    assert!(std::env::var_os("LISTEN_FDS").is_none());
    // For us, with a count that is not one: a clear error, and removed.
    for garbage in ["two", "-1", "99999999", ""] {
        std::env::set_var("LISTEN_PID", std::process::id().to_string());
        std::env::set_var("LISTEN_FDS", garbage);
        let e = take_activation_sockets().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{garbage:?}");
        assert!(e.to_string().contains("LISTEN_FDS"), "{e}");
        assert!(std::env::var_os("LISTEN_PID").is_none());
        // Consumed: a second call passes nothing.
        assert!(take_activation_sockets().unwrap().is_empty());
    }
    // For us, zero sockets: nothing.
    std::env::set_var("LISTEN_PID", std::process::id().to_string());
    std::env::set_var("LISTEN_FDS", "0");
    assert!(take_activation_sockets().unwrap().is_empty());
}
