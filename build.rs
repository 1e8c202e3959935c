//! Embeds what `enclave` needs at run time, so that it needs no files and no network:
//!
//! - the SQL migration directories (`migrations_public/`, `migrations_tenant/`), in diesel's
//!   layout (`<version>_<name>/up.sql` and `down.sql`), listed in version order for
//!   `src/tenancy/migrations/` to checksum and run;
//! - GraphiQL's browser bundles from `web/graphiql/node_modules` (pinned npm dependencies,
//!   installed with `npm ci --prefix web/graphiql`); without them `/graphiql` explains how
//!   to install them.

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
    embed_graphiql();
}

/// Writes `graphiql_assets.rs`: `Some(assets)` when the npm packages are installed.
fn embed_graphiql() {
    let root =
        Path::new(&env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("web/graphiql/node_modules");
    println!("cargo:rerun-if-changed=web/graphiql/package-lock.json");
    let files = [
        ("react_js", "react/umd/react.production.min.js"),
        ("react_dom_js", "react-dom/umd/react-dom.production.min.js"),
        ("graphiql_js", "graphiql/graphiql.min.js"),
        ("graphiql_css", "graphiql/graphiql.min.css"),
    ];
    let paths: Vec<_> = files
        .iter()
        .map(|(field, file)| (*field, root.join(file)))
        .collect();
    let code = if paths.iter().all(|(_, path)| path.is_file()) {
        let mut fields = String::new();
        for (field, path) in &paths {
            println!("cargo:rerun-if-changed={}", path.display());
            writeln!(
                fields,
                "    {field}: include_bytes!({:?}),",
                path.display().to_string()
            )
            .expect("write to string");
        }
        format!("pub static ASSETS: Option<Assets> = Some(Assets {{\n{fields}}});\n")
    } else {
        "pub static ASSETS: Option<Assets> = None;\n".to_owned()
    };
    let out = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("graphiql_assets.rs");
    fs::write(out, code).expect("write graphiql_assets.rs");
}
