//! Outages of the production services (runs in scripts/test's real-service pass): each test runs
//! its own private instance of the service it stops, so parallel tests are not disturbed. The
//! broker, MySQL and Redis are each stopped under a steady like load ([`under_load`]): every reply
//! is an acknowledgement or a 503 envelope, writes recover by themselves, nothing acknowledged is
//! lost. Then what each outage must not break: reads and the cache around a Redis outage
//! ([`redis`]), the projections around a MySQL outage ([`mysql`]), registers around a broker
//! outage ([`broker`]).

mod broker;
mod mysql;
mod redis;
mod under_load;

use titok_tests::*;

/// A server (no sample content) whose Redis is a private one the test stops and starts.
async fn on_private_redis() -> (PrivateService, TestApp) {
    let redis = PrivateService::redis().await;
    let app = TestApp::start_with(
        &["--no-sample"],
        &[("--redis-url", format!("redis://127.0.0.1:{}", redis.port))],
    )
    .await;
    (redis, app)
}

/// A private broker behind a proxy that can cut it off: `(broker, proxy, brokers argument)`.
async fn broker_behind_proxy() -> (PrivateService, FaultyProxy, String) {
    let (port, proxy_port) = (free_port(), free_port());
    let broker = PrivateService::tansu_advertising(port, proxy_port).await;
    let proxy = FaultyProxy::start_on(proxy_port, port).await;
    (broker, proxy, format!("127.0.0.1:{proxy_port}"))
}
