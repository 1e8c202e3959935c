//! The tenant archive on disk: a `tar.gz` holding `manifest.json`, `manifest.sha256` (the
//! manifest's own digest) and the parts the manifest lists — one `tables/<table>.copy` per
//! table of the tenant schema (PostgreSQL `COPY` text format) and the tenant's `public`
//! rows as JSON (`public/tenant.json`, `public/domains.json`, `public/memberships.json`).
//!
//! This module owns the format: writing an archive (to `<file>.partial`, renamed into
//! place only once complete, so a failed export leaves no archive behind) and reading one
//! back, refusing it — before anything touches the database — when it is truncated, when
//! a byte changed (gzip CRC, the manifest digest, the SHA-256 of every part, the row count
//! of every table) or when it comes from a newer format or Enclave version.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BackupError;

/// Version of the archive layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The Enclave version writing an archive (also the newest one this build restores).
pub const ENCLAVE_VERSION: &str = env!("CARGO_PKG_VERSION");

pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_DIGEST: &str = "manifest.sha256";
pub const TENANT_PART: &str = "public/tenant.json";
pub const DOMAINS_PART: &str = "public/domains.json";
pub const MEMBERSHIPS_PART: &str = "public/memberships.json";

/// What an archive holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub enclave_version: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created_at: String,
    pub tenant_id: uuid::Uuid,
    pub slug: String,
    /// Tenant migrations applied to the schema (`version`, `checksum`), in order.
    pub tenant_migrations: Vec<MigrationEntry>,
    /// Public migrations of the source database (informational).
    pub public_migrations: Vec<MigrationEntry>,
    pub tables: Vec<TableEntry>,
    pub sequences: Vec<SequenceEntry>,
    /// SHA-256 (hex) of every part, by its path in the archive.
    pub parts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationEntry {
    pub version: String,
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: u64,
}

impl TableEntry {
    pub fn part(&self) -> String {
        table_part(&self.name)
    }
}

pub fn table_part(table: &str) -> String {
    format!("tables/{table}.copy")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceEntry {
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Rows of a `COPY` text-format part: each row ends with a newline, and newlines inside
/// values are escaped (`\n`), so counting newlines counts rows.
pub fn copy_rows(data: &[u8]) -> u64 {
    data.iter().filter(|b| **b == b'\n').count() as u64
}

/// Writes an archive part by part; [`Writer::finish`] adds the manifest and moves the
/// file into place. Dropped unfinished, it removes its partial file.
pub struct Writer {
    builder: Option<tar::Builder<GzEncoder<BufWriter<File>>>>,
    partial: PathBuf,
    target: PathBuf,
    parts: BTreeMap<String, String>,
}

impl Writer {
    pub fn create(target: &Path) -> Result<Self, BackupError> {
        if target.exists() {
            return Err(BackupError::Refused(format!(
                "{} exists already; choose another --out",
                target.display()
            )));
        }
        let mut partial = target.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial).map_err(|e| io(&partial, e))?;
        let encoder = GzEncoder::new(BufWriter::new(file), Compression::fast());
        Ok(Self {
            builder: Some(tar::Builder::new(encoder)),
            partial,
            target: target.to_owned(),
            parts: BTreeMap::new(),
        })
    }

    /// Appends one part and records its digest.
    pub fn add(&mut self, path: &str, data: &[u8]) -> Result<(), BackupError> {
        self.parts.insert(path.to_owned(), sha256_hex(data));
        self.append(path, data)
    }

    fn append(&mut self, path: &str, data: &[u8]) -> Result<(), BackupError> {
        let builder = self
            .builder
            .as_mut()
            .ok_or_else(|| BackupError::Io("the archive is already finished".into()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
        builder
            .append_data(&mut header, path, data)
            .map_err(|e| io(&self.partial, e))
    }

    pub fn parts(&self) -> &BTreeMap<String, String> {
        &self.parts
    }

    /// Appends the manifest (with the digests of every part) and its own digest, flushes
    /// to disk and renames the file into place.
    pub fn finish(mut self, mut manifest: Manifest) -> Result<Manifest, BackupError> {
        manifest.parts = self.parts.clone();
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| BackupError::Io(format!("cannot encode the manifest: {e}")))?;
        self.append(MANIFEST, &json)?;
        self.append(MANIFEST_DIGEST, format!("{}\n", sha256_hex(&json)).as_bytes())?;
        let builder = self
            .builder
            .take()
            .ok_or_else(|| BackupError::Io("the archive is already finished".into()))?;
        let encoder = builder.into_inner().map_err(|e| io(&self.partial, e))?;
        let mut writer = encoder.finish().map_err(|e| io(&self.partial, e))?;
        writer.flush().map_err(|e| io(&self.partial, e))?;
        let file = writer
            .into_inner()
            .map_err(|e| io(&self.partial, e.into_error()))?;
        file.sync_all().map_err(|e| io(&self.partial, e))?;
        std::fs::rename(&self.partial, &self.target).map_err(|e| io(&self.target, e))?;
        Ok(manifest)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.builder.is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

fn io(path: &Path, error: std::io::Error) -> BackupError {
    BackupError::Io(format!("{}: {error}", path.display()))
}

/// A verified archive: its manifest and every part, in memory.
#[derive(Debug)]
pub struct Archive {
    pub manifest: Manifest,
    parts: BTreeMap<String, Vec<u8>>,
}

impl Archive {
    /// Reads and verifies an archive; see the module doc for what is refused.
    pub fn read(path: &Path) -> Result<Self, BackupError> {
        let file = File::open(path).map_err(|e| io(path, e))?;
        let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let corrupt = |e: std::io::Error| {
            BackupError::Corrupt(format!(
                "{} cannot be read (truncated or damaged): {e}",
                path.display()
            ))
        };
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let name = entry
                .path()
                .map_err(corrupt)?
                .to_str()
                .map(str::to_owned)
                .ok_or_else(|| BackupError::Corrupt("an entry's name is not UTF-8".into()))?;
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(corrupt)?;
            if files.insert(name.clone(), data).is_some() {
                return Err(BackupError::Corrupt(format!("entry {name} appears twice")));
            }
        }
        // Reading to the end of the tar does not read the gzip trailer: make sure it is
        // there and its CRC matches.
        let mut rest = Vec::new();
        archive.into_inner().read_to_end(&mut rest).map_err(corrupt)?;

        let json = files
            .remove(MANIFEST)
            .ok_or_else(|| BackupError::Corrupt(format!("{} has no {MANIFEST}", path.display())))?;
        let digest = files
            .remove(MANIFEST_DIGEST)
            .ok_or_else(|| BackupError::Corrupt(format!("{} has no {MANIFEST_DIGEST}", path.display())))?;
        if String::from_utf8_lossy(&digest).trim() != sha256_hex(&json) {
            return Err(BackupError::Corrupt(
                "the manifest does not match its digest (manifest.sha256)".into(),
            ));
        }
        let manifest = parse_manifest(&json)?;
        for (name, expected) in &manifest.parts {
            let data = files
                .get(name)
                .ok_or_else(|| BackupError::Corrupt(format!("part {name} is missing")))?;
            if &sha256_hex(data) != expected {
                return Err(BackupError::Corrupt(format!(
                    "part {name} does not match its SHA-256 in the manifest"
                )));
            }
        }
        if let Some(extra) = files.keys().find(|name| !manifest.parts.contains_key(*name)) {
            return Err(BackupError::Corrupt(format!(
                "entry {extra} is not listed in the manifest"
            )));
        }
        for table in &manifest.tables {
            let data = files
                .get(&table.part())
                .ok_or_else(|| BackupError::Corrupt(format!("table {} has no part", table.name)))?;
            let rows = copy_rows(data);
            if rows != table.rows {
                return Err(BackupError::Corrupt(format!(
                    "table {} has {rows} rows, the manifest says {}",
                    table.name, table.rows
                )));
            }
        }
        Ok(Self {
            manifest,
            parts: files,
        })
    }

    pub fn part(&self, name: &str) -> Result<&[u8], BackupError> {
        self.parts
            .get(name)
            .map(Vec::as_slice)
            .ok_or_else(|| BackupError::Corrupt(format!("part {name} is missing")))
    }

    /// A JSON part.
    pub fn json(&self, name: &str) -> Result<serde_json::Value, BackupError> {
        serde_json::from_slice(self.part(name)?)
            .map_err(|e| BackupError::Corrupt(format!("part {name} is not valid JSON: {e}")))
    }
}

/// Parses a manifest, checking its format and Enclave version before its shape, so that
/// an archive from a newer release gets that answer rather than a parse error.
fn parse_manifest(json: &[u8]) -> Result<Manifest, BackupError> {
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| BackupError::Corrupt(format!("the manifest is not valid JSON: {e}")))?;
    let format = value.get("format").and_then(serde_json::Value::as_u64);
    match format {
        Some(f) if f == u64::from(FORMAT_VERSION) => {}
        Some(f) if f > u64::from(FORMAT_VERSION) => {
            return Err(BackupError::Unsupported(format!(
                "the archive has format {f}, newer than this Enclave ({ENCLAVE_VERSION}) reads \
                 (format {FORMAT_VERSION}); import it with the Enclave version that made it or a later one"
            )));
        }
        Some(f) => {
            return Err(BackupError::Unsupported(format!(
                "the archive has format {f}, which this Enclave does not read (format {FORMAT_VERSION})"
            )));
        }
        None => return Err(BackupError::Corrupt("the manifest has no format version".into())),
    }
    let version = value
        .get("enclave_version")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| BackupError::Corrupt("the manifest has no Enclave version".into()))?;
    if is_newer(version, ENCLAVE_VERSION) {
        return Err(BackupError::Unsupported(format!(
            "the archive was made by Enclave {version}, newer than this one ({ENCLAVE_VERSION})"
        )));
    }
    serde_json::from_value(value).map_err(|e| BackupError::Corrupt(format!("the manifest is malformed: {e}")))
}

/// Whether version `a` (`major.minor.patch`, numeric) is newer than `b`. An unparsable
/// version counts as newer: nothing is restored from an archive we cannot place.
fn is_newer(a: &str, b: &str) -> bool {
    fn parse(v: &str) -> Option<Vec<u64>> {
        let core = v.split(['-', '+']).next()?;
        core.split('.').map(|n| n.parse().ok()).collect()
    }
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a > b,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(is_newer("0.10.0", "0.9.3"));
        assert!(is_newer("1.0.0", "0.1.0"));
        assert!(!is_newer("0.1.0", "0.1.0"));
        assert!(!is_newer("0.0.9", "0.1.0"));
        assert!(is_newer("garbage", "0.1.0"));
    }

    #[test]
    fn copy_rows_counts_lines() {
        assert_eq!(copy_rows(b""), 0);
        assert_eq!(copy_rows(b"1\ta\\nb\n2\tc\n"), 2);
    }

    #[test]
    fn a_newer_format_is_refused_before_its_shape_is_read() {
        let error = parse_manifest(br#"{"format": 99, "something": "else"}"#).expect_err("refused");
        assert!(matches!(error, BackupError::Unsupported(_)), "{error}");
        assert!(error.to_string().contains("format 99"), "{error}");
    }
}
