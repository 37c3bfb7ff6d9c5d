//! A poller backend written outside evio — `examples/counting_poller.rs`, a
//! counting decorator over the default poller — passes the public
//! conformance suite and runs a real server.

#[allow(dead_code)]
#[path = "../examples/counting_poller.rs"]
mod counting_poller;

use std::sync::Arc;

use counting_poller::{echo_run, CountingPoller};
use evio_core::DefaultPoller;

evio_core::poller::conformance_tests!(counting, || Ok(CountingPoller::new(
    DefaultPoller::new()?,
    Arc::default()
)));

#[test]
fn a_server_runs_on_the_user_backend() {
    let [register, reregister, deregister, close, wait] = echo_run(20, 100).unwrap();
    // 2,000 round trips in the steady state: every one waited, none touched
    // a registration (edge-triggered backends never do; level-triggered
    // ones turn write interest on only when a reply does not fit).
    assert!(wait > 0);
    assert_eq!((register, deregister, close), (0, 0, 0));
    if <DefaultPoller as evio_core::Poller>::EDGE_TRIGGERED {
        assert_eq!(reregister, 0, "epoll_ctl in the steady state");
    }
}
