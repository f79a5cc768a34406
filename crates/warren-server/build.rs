//! Rebuild when a migration is added or edited: `sqlx::migrate!` embeds the directory at
//! compile time but does not tell cargo to watch it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
