//! The pieces of the `bench` runner, one job per module. Imports point one
//! way, down this list: a module uses only those above it.
//!
//! * [`process`] — affinity, pinned spawning, reaping, watchdog, tools;
//! * [`settings`] — command line, defaults, where binaries and tools are;
//! * [`certs`] — what the TLS loads pin, and the run's certificate;
//! * [`server`] — server specs, nginx/HAProxy configs, start and stop;
//! * [`scrape`] — scraping a metrics endpoint during a run;
//! * [`discover`] — which servers there are (ours, baseline, peers, floor);
//! * [`load`] — the load tools, one run, CPU per request;
//! * [`memory`] — the idle-connection memory workload;
//! * [`probe`] — what a TLS server negotiates, and whether it resumes;
//! * [`plan`] — which groups (a load against servers) and jobs run;
//! * [`report`] — rows, medians, ratios, strace figures, the JSON report;
//! * [`markdown`], [`charts`] — the report as tables and SVG charts;
//! * [`execute`] — preparing the runner and running the jobs.

pub mod process;
pub mod settings;

pub mod certs;

pub mod server;

pub mod scrape;

pub mod discover;

pub mod load;
pub mod memory;
pub mod probe;

pub mod plan;

pub mod report;

pub mod charts;
pub mod markdown;
pub mod speed;

pub mod execute;
