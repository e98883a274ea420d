//! `titok-bench`: see the crate docs of the `titok-bench` library and `titok-bench --help`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    titok_bench::main_entry().await
}
