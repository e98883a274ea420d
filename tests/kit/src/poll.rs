//! The one poll loop of the tests: [`eventually`].

use std::time::Duration;

/// Poll `check` every 100 ms until it returns `Some`, for at most `timeout`; panics with `what`
/// when it never does. The one poll loop of the tests.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
