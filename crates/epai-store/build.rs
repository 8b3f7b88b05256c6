//! The migrations are embedded at compile time (`refinery::embed_migrations!`), which cargo does
//! not track: without this, adding a migration file would not rebuild the crate.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
