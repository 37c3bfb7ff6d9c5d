//! `tokio-echo`: the echo server a tokio user would write, as a peer in the
//! echo race: one task per connection, a 64 KiB buffer, a `read` /
//! `write_all` loop, TCP_NODELAY on. With `--threads 1` (the default) it
//! runs on a `current_thread` runtime; with `--threads N` on a
//! multi-thread runtime of N workers (the scaling workload).
//!
//! Usage: `tokio-echo --port N [--threads N]` (listens on 127.0.0.1).

use evio_benches::cli::{self, CliError};
use lexopt::Arg::Long;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const USAGE: &str = "\
usage: tokio-echo --port N [--threads N]

The tokio peer of the echo race, on 127.0.0.1.
  --port N       the port to listen on (required)
  --threads N    1 (default): a current_thread runtime; N > 1: a
                 multi-thread runtime of N workers (the scaling workload)
  -V, --version  print the name and version
  -h, --help     this text";

fn parse(p: &mut lexopt::Parser) -> Result<(u16, usize), CliError> {
    let (mut port, mut threads) = (None, 1usize);
    while let Some(arg) = p.next()? {
        match arg {
            Long("port") => port = Some(cli::value(p, "--port")?),
            Long("threads") => threads = cli::value(p, "--threads")?,
            other => return Err(cli::unexpected(other)),
        }
    }
    let port = port.ok_or("--port N is required")?;
    if threads == 0 {
        return Err("--threads must be positive".into());
    }
    Ok((port, threads))
}

fn main() -> std::io::Result<()> {
    let (port, threads) = cli::parse_or_exit("tokio-echo", USAGE, parse);
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(serve(port, threads))
}

async fn serve(port: u16, threads: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("tokio-echo: serving on 127.0.0.1:{port} ({threads} thread(s))");
    loop {
        let (mut sock, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // e.g. EMFILE: keep serving the connections we have.
                eprintln!("tokio-echo: accept: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if sock.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}
