//! [`FaultyProxy`]: a TCP proxy on loopback in front of one service whose [`Fault`] (latency,
//! stall, reset) a test changes at any time — the harness's slow and broken network.

use std::time::Duration;

use titok_kit::free_port;

/// What a [`FaultyProxy`] does to the bytes it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as they come.
    None,
    /// Hold every chunk this long before forwarding it (each direction).
    Latency(Duration),
    /// Forward nothing (connections stay open, bytes wait) until the fault changes.
    Stall,
    /// Reset every open connection (TCP RST) and every new one, until the fault changes.
    Reset,
}

/// A TCP proxy on loopback in front of one service, with a fault that can change at any time:
/// the test harness's slow and broken network.
pub struct FaultyProxy {
    pub port: u16,
    fault: tokio::sync::watch::Sender<Fault>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// A proxy on a free port forwarding to `127.0.0.1:target`.
    pub async fn start(target: u16) -> FaultyProxy {
        FaultyProxy::start_on(free_port(), target).await
    }

    /// A proxy on `port` forwarding to `127.0.0.1:target`.
    pub async fn start_on(port: u16, target: u16) -> FaultyProxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("proxy bind");
        let (fault, watch) = tokio::sync::watch::channel(Fault::None);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watch = watch.clone();
                tokio::spawn(proxy_connection(client, target, watch));
            }
        });
        FaultyProxy { port, fault, task }
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn proxy_connection(
    client: tokio::net::TcpStream,
    target: u16,
    mut watch: tokio::sync::watch::Receiver<Fault>,
) {
    // RST instead of FIN when dropped: a reset looks like a broken network, not a clean close.
    // (Deprecated because a non-zero linger blocks on drop; a zero one does not.)
    #[allow(deprecated)]
    let _ = client.set_linger(Some(Duration::ZERO));
    if *watch.borrow() == Fault::Reset {
        return;
    }
    let Ok(upstream) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    #[allow(deprecated)]
    let _ = upstream.set_linger(Some(Duration::ZERO));
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let watch_up = watch.clone();
    let watch_down = watch.clone();
    let reset = async {
        loop {
            if *watch.borrow_and_update() == Fault::Reset {
                return;
            }
            if watch.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = pump(client_read, upstream_write, watch_up) => {}
        _ = pump(upstream_read, client_write, watch_down) => {}
        _ = reset => {}
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut fault: tokio::sync::watch::Receiver<Fault>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        loop {
            let now = *fault.borrow_and_update();
            match now {
                Fault::None | Fault::Reset => break,
                Fault::Latency(delay) => {
                    tokio::time::sleep(delay).await;
                    break;
                }
                Fault::Stall => {
                    if fault.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
