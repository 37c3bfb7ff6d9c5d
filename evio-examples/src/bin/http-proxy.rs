//! `http-proxy`: an HTTP/1.1 reverse proxy (see `evio_examples::http_proxy`).
//! Per-loop keep-alive pools to the upstreams, bodies streamed both ways
//! with backpressure, hop-by-hop headers removed and `X-Forwarded-For`,
//! `X-Forwarded-Proto` and `Via` added, ambiguous requests refused,
//! retries only where safe, passive and active health checks.
//!
//! ```text
//! http-proxy --port 8080 --upstream 127.0.0.1:9001 --upstream 127.0.0.1:9002 --loops -1
//! curl http://127.0.0.1:8080/
//! http-proxy --port 8080 --tls-port 8443 --tls-cert cert.pem --tls-key key.pem \
//!     --upstream origin.example:443 --upstream-tls --balance least-conn --health-check /health
//! ```

use std::process::ExitCode;

use evio_examples::cli;
use evio_examples::http_proxy::{self, flags, probe, HttpProxy};
use evio_examples::metrics;

fn main() -> ExitCode {
    cli::main(&http_proxy::SPEC, |opts| {
        let settings = flags::Settings::from_opts(opts)?;
        if let Some(p) = settings.probe.clone() {
            probe::spawn(settings.upstreams.clone(), p)?;
        }
        let proxy = HttpProxy::new(settings.upstreams, settings.config);
        if opts.metrics_port.is_some() {
            let counters = proxy.clone();
            metrics::add_section(move |out| counters.render_metrics(out));
        }
        Ok(proxy)
    })
}
