//! `tokio-echo`: the echo server a tokio user would write, as a peer in the
//! echo race: a `current_thread` runtime, one task per connection, a 64 KiB
//! buffer, a `read` / `write_all` loop, TCP_NODELAY on.
//!
//! Usage: `tokio-echo --port N` (listens on 127.0.0.1).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn port() -> u16 {
    let mut a = evio_benches::args::Args::from_env();
    let port = a.value::<u16>("--port").and_then(|p| {
        a.clone().finish()?;
        p.ok_or_else(|| "--port N is required".to_string())
    });
    match port {
        Ok(p) => p,
        Err(e) => {
            eprintln!("tokio-echo: {e}\nusage: tokio-echo --port N");
            std::process::exit(2);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let port = port();
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("tokio-echo: serving on 127.0.0.1:{port}");
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
