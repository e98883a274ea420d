//! The `titok` binary, built inside the tests crate so that black-box tests can start it as a real
//! process (`CARGO_BIN_EXE_titok-under-test`), kill it with SIGKILL, and restart it.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    titok::main_entry().await
}
