//! The `titok-bench` binary, built inside the tests crate so that the suite can run the quick
//! bench as a real process (like `titok-under-test` for the server).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    titok_bench::main_entry().await
}
