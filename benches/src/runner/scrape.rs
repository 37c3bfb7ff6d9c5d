//! Scraping a server's metrics endpoint during a run, as Prometheus would
//! (the `echo-metrics` workload): one `GET /metrics` on a fresh connection
//! every [`SCRAPE_EVERY`], from a thread of the runner (which runs on the
//! load's core), so that the endpoint's work is in the server's CPU figure.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the endpoint is scraped (Prometheus's default is 15 s: this
/// is the harsher case).
pub const SCRAPE_EVERY: Duration = Duration::from_secs(1);

/// What the scrapes of one run came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scrapes {
    /// Answered with `200` and counters.
    pub ok: u64,
    /// Refused, cut short or not a metrics page.
    pub failed: u64,
}

/// A running scraper; [`Scraper::stop`] ends it.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Scrapes>,
}

impl Scraper {
    /// Scrapes `127.0.0.1:port` now and then every `every` until stopped.
    pub fn start(port: u16, every: Duration) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut got = Scrapes::default();
            while !flag.load(Ordering::Relaxed) {
                let next = Instant::now() + every;
                match scrape(addr) {
                    Ok(()) => got.ok += 1,
                    Err(_) => got.failed += 1,
                }
                while !flag.load(Ordering::Relaxed) && Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            got
        });
        Scraper { stop, thread }
    }

    /// Stops scraping; what the scrapes came to.
    pub fn stop(self) -> Scrapes {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// One scrape: `GET /metrics`, the whole answer read (the endpoint closes).
pub fn scrape(addr: SocketAddr) -> io::Result<()> {
    let timeout = Some(Duration::from_secs(2));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(timeout)?;
    s.set_write_timeout(timeout)?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut page = Vec::new();
    s.read_to_end(&mut page)?;
    let page = String::from_utf8_lossy(&page);
    if page.starts_with("HTTP/1.1 200") && page.contains("\nevio_") {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a metrics page",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn counts_answers_and_failures() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for body in ["evio_x 1\n", "nope\n"] {
                let (mut c, _) = listener.accept().unwrap();
                let mut req = [0u8; 512];
                let _ = c.read(&mut req).unwrap();
                let page = format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{body}");
                c.write_all(page.as_bytes()).unwrap();
            }
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(scrape(addr).is_ok());
        assert!(scrape(addr).is_err());
        server.join().unwrap();
        // Nobody listens any more: a failure, counted.
        let got = Scraper::start(port, Duration::from_secs(60)).stop();
        assert_eq!(got.ok, 0);
    }
}
