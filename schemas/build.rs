//! Rebuild this crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! directories at compile time, and cargo does not watch them by itself.

fn main() {
    for dir in ["mysql", "sqlite/accounts", "sqlite/log", "sqlite/views"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
