//! Micro-benchmarks of the hot paths: RESP and HTTP parsing with reply
//! building (the examples' engines, fed as the loop feeds them), the
//! `InputStream` carry-over, and a full echo round trip through one event
//! loop over a unix socket pair.
//!
//! Run: `cargo bench -p evio-benches --bench hot_paths`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use evio_core::{Action, Builder, InputStream};
use evio_examples::{http, redis, resp, store::Store};
use evio_test_support::Echo;

/// Benches one engine call per iteration: `feed` of the whole `input` into
/// a cleared reply buffer, which must ask for nothing but more input.
fn bench_feed(
    g: &mut BenchmarkGroup<'_, WallTime>,
    id: BenchmarkId,
    input: &[u8],
    mut feed: impl FnMut(&[u8], &mut Vec<u8>) -> Action,
) {
    let mut out = Vec::with_capacity(8192);
    g.bench_with_input(id, input, |b, input| {
        b.iter(|| {
            out.clear();
            assert_eq!(feed(input, &mut out), Action::None);
            out.len()
        })
    });
}

fn redis_engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("redis_feed");
    let cases: [(&str, Vec<u8>); 3] = [
        ("ping_inline_x16", b"PING\r\n".repeat(16)),
        ("ping_mbulk_x16", b"*1\r\n$4\r\nPING\r\n".repeat(16)),
        (
            "set_get_x8",
            b"*3\r\n$3\r\nSET\r\n$5\r\nkey:1\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n"
                .repeat(8),
        ),
    ];
    for (name, input) in cases {
        let mut engine = redis::Engine::new(Store::for_loops(1), resp::Limits::default());
        let mut session = redis::Session::default();
        g.throughput(Throughput::Elements(16));
        let id = BenchmarkId::from_parameter(name);
        bench_feed(&mut g, id, &input, |input, out| {
            engine.feed(&mut session, input, out)
        });
    }
    g.finish();
}

fn http_engine(c: &mut Criterion) {
    let mut g = c.benchmark_group("http_feed");
    let request =
        b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";
    for depth in [1usize, 16] {
        let input = request.repeat(depth);
        let mut engine = http::Engine::new(http::Config::default());
        let mut session = http::Session::default();
        g.throughput(Throughput::Elements(depth as u64));
        let id = BenchmarkId::new("get_pipelined", depth);
        bench_feed(&mut g, id, &input, |input, out| {
            engine.feed(&mut session, input, out)
        });
    }
    g.finish();
}

fn input_stream(c: &mut Criterion) {
    // A 64-byte message arriving in two reads: the carry-over path.
    let msg = [b'x'; 64];
    c.bench_function("input_stream_split_64", |b| {
        let mut is = InputStream::new();
        b.iter(|| {
            let first = &msg[..40];
            let data = is.begin(first);
            let n = data.len();
            is.end(first, if n >= 64 { 64 } else { 0 });
            let second = &msg[40..];
            let data = is.begin(second);
            let n = data.len();
            is.end(second, n);
            n
        })
    });
}

fn loop_round_trip(c: &mut Criterion) {
    // One request/response through a real loop (epoll, unix socket): the
    // loop's own cost plus two syscalls on each side.
    let dir = std::env::temp_dir().join(format!("evio-bench-{}.sock", std::process::id()));
    let server = Builder::new()
        .start(Echo, &[format!("unix://{}", dir.display())])
        .expect("start");
    let mut client = UnixStream::connect(&dir).expect("connect");
    let mut buf = [0u8; 64];
    c.bench_function("loop_echo_round_trip_64", |b| {
        b.iter(|| {
            client.write_all(&[7u8; 64]).unwrap();
            client.read_exact(&mut buf).unwrap();
            buf[0]
        })
    });
    drop(client);
    server.shutdown().expect("shutdown");
}

criterion_group!(
    benches,
    redis_engine,
    http_engine,
    input_stream,
    loop_round_trip
);
criterion_main!(benches);
