//! Server-wide settings the loops read.

use std::time::Duration;

use crate::balance::LoadBalance;

/// Settings chosen on the [`Builder`](crate::Builder), shared read-only by
/// every loop.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) load_balance: LoadBalance,
    /// Output bound per connection: above `high_water` queued bytes the
    /// connection (or the writers feeding it) stops being read until the
    /// queue drains to `low_water`.
    pub(crate) high_water: usize,
    pub(crate) low_water: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) dial_timeout: Option<Duration>,
    pub(crate) max_connections: Option<usize>,
    /// Out of descriptors, close the longest-idle reclaimable connections.
    pub(crate) reclaim_idle: bool,
    /// The server side of `tls://` listeners.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// How long a TLS handshake may take.
    #[cfg(feature = "tls")]
    pub(crate) tls_handshake_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            load_balance: LoadBalance::Random,
            high_water: 1024 * 1024,
            low_water: 256 * 1024,
            idle_timeout: None,
            dial_timeout: Some(Duration::from_secs(10)),
            max_connections: None,
            reclaim_idle: false,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_handshake_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// A timeout as whole milliseconds for the loop's timers (0: none; at
/// least 1 ms otherwise).
pub(crate) fn duration_ms(d: Option<Duration>) -> u32 {
    d.map_or(0, |d| d.as_millis().clamp(1, u32::MAX as u128) as u32)
}
