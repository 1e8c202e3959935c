//! Embeds the SQL migration directories (`migrations_public/`, `migrations_tenant/`) into the
//! binary, so that `enclave` needs no files at run time. Each directory follows diesel's
//! layout (`<version>_<name>/up.sql` and `down.sql`); the generated file lists them in
//! version order and `src/tenancy/migrations/` checksums and runs them.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_migrations.rs");
    let mut code = String::new();
    for (constant, dir) in [("PUBLIC", "migrations_public"), ("TENANT", "migrations_tenant")] {
        println!("cargo:rerun-if-changed={dir}");
        let root = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join(dir);
        let mut versions: Vec<_> = fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
            .map(|entry| entry.expect("readable directory entry").path())
            .filter(|path| path.is_dir())
            .collect();
        versions.sort();
        writeln!(code, "pub static {constant}: &[EmbeddedMigration] = &[").expect("write to string");
        for path in versions {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("UTF-8 migration directory name");
            let up = path.join("up.sql");
            let down = path.join("down.sql");
            assert!(up.is_file(), "{} has no up.sql", path.display());
            assert!(down.is_file(), "{} has no down.sql", path.display());
            println!("cargo:rerun-if-changed={}", up.display());
            println!("cargo:rerun-if-changed={}", down.display());
            writeln!(
                code,
                "    EmbeddedMigration {{ version: {name:?}, up: include_str!({up:?}), down: include_str!({down:?}) }},",
                up = up.display().to_string(),
                down = down.display().to_string(),
            )
            .expect("write to string");
        }
        writeln!(code, "];").expect("write to string");
    }
    fs::write(&out, code).expect("write embedded_migrations.rs");
}
