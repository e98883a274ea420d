//! `titok`: see the crate docs of the `titok` library and `titok --help`.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    titok::main_entry().await
}
