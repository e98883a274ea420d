//! Loopback ports: a free one, and the one wait until a server accepts connections on one.

use std::time::Duration;

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Wait until `127.0.0.1:port` accepts a TCP connection, trying every 25 ms for at most
/// `timeout`. When `child` (the server's process) exits first, an error with its exit status.
pub async fn wait_for_port(
    port: u16,
    timeout: Duration,
    mut child: Option<&mut std::process::Child>,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!("exited ({status}) before listening on port {port}");
            }
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("did not listen on port {port} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
