//! The files Sourcegraph can load configuration from at start-up (`SITE_CONFIG_FILE`,
//! `GLOBAL_SETTINGS_FILE`, `EXTSVC_CONFIG_FILE`): reading them into a snapshot and writing a
//! snapshot as them.
//!
//! `SITE_CONFIG_FILE` may list several files separated by `:`; Sourcegraph merges them at start-up.
//! A backup keeps each file's text as its own site configuration document (byte-exact, nothing
//! merged); writing files needs as many paths, and a database import refuses several.

use std::path::{Path, PathBuf};

use chrono::Utc;
use jsonc_parser::ast::Value;
use jsonc_parser::common::Ranged;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::ConfigError;
use crate::jsonc::{line_column, parse_object, validate_document, value_type};
use crate::model::{ConfigDocument, ConfigSnapshot, DocumentKind, Provenance};
use crate::validate::validate_snapshot;

/// The most a configuration file may hold when read (16 MiB). Sourcegraph's configuration
/// documents are kilobytes; a larger file, or a device such as `/dev/zero` behind the name, is
/// refused with [`ConfigError::FileTooLarge`] or [`ConfigError::NotRegularFile`] instead of being
/// read until memory runs out.
pub const MAX_CONFIG_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// Environment variable listing the site configuration file(s), `:`-separated.
pub const SITE_CONFIG_FILE: &str = "SITE_CONFIG_FILE";
/// Environment variable naming the global settings file.
pub const GLOBAL_SETTINGS_FILE: &str = "GLOBAL_SETTINGS_FILE";
/// Environment variable naming the code host connections file.
pub const EXTSVC_CONFIG_FILE: &str = "EXTSVC_CONFIG_FILE";

/// Warning for anyone writing `EXTSVC_CONFIG_FILE` (Sourcegraph's start-up delta sync).
pub const EXTSVC_FILE_WARNING: &str = "an instance started with EXTSVC_CONFIG_FILE deletes every code host connection in its database that the file lacks, and names connections \"<KIND> #<n>\" (display names from the database are not kept)";

/// Where the three configuration files are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFilePaths {
    /// Site configuration file(s); Sourcegraph merges several.
    pub site_config: Vec<PathBuf>,
    /// Global settings file.
    pub global_settings: Option<PathBuf>,
    /// Code host connections file.
    pub extsvc_config: Option<PathBuf>,
}

impl ConfigFilePaths {
    /// From `SITE_CONFIG_FILE`, `GLOBAL_SETTINGS_FILE` and `EXTSVC_CONFIG_FILE`.
    pub fn from_env() -> Self {
        Self::from_env_with(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env) with a custom variable lookup.
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |n: &str| lookup(n).filter(|v| !v.is_empty());
        ConfigFilePaths {
            site_config: get(SITE_CONFIG_FILE)
                .map(|v| {
                    v.split(':')
                        .filter(|p| !p.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default(),
            global_settings: get(GLOBAL_SETTINGS_FILE).map(PathBuf::from),
            extsvc_config: get(EXTSVC_CONFIG_FILE).map(PathBuf::from),
        }
    }

    /// `site-config.json`, `global-settings.json` and `extsvc-config.json` in `dir` (the names
    /// the export's `files/` layout uses).
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        ConfigFilePaths {
            site_config: vec![dir.join(SITE_FILE_NAME)],
            global_settings: Some(dir.join(SETTINGS_FILE_NAME)),
            extsvc_config: Some(dir.join(EXTSVC_FILE_NAME)),
        }
    }

    /// The value to give `SITE_CONFIG_FILE`.
    pub fn site_config_env(&self) -> String {
        let v: Vec<String> = self.site_config.iter().map(|p| p.display().to_string()).collect();
        v.join(":")
    }
}

/// File name of the site configuration in the `files/` layout.
pub const SITE_FILE_NAME: &str = "site-config.json";
/// File name of the global settings in the `files/` layout.
pub const SETTINGS_FILE_NAME: &str = "global-settings.json";
/// File name of the code host connections in the `files/` layout.
pub const EXTSVC_FILE_NAME: &str = "extsvc-config.json";

impl ConfigSnapshot {
    /// Reads the files in `paths` (missing entries are skipped; a named file that is missing is
    /// an error). Every document is validated; errors name the file and line:column. Each file
    /// must be a regular file (a symbolic link to one is followed) of at most
    /// [`MAX_CONFIG_FILE_SIZE`] bytes.
    pub async fn from_files(paths: &ConfigFilePaths) -> Result<ConfigSnapshot, ConfigError> {
        let mut documents = Vec::new();
        for p in &paths.site_config {
            let text = read_text(p).await?;
            documents.push(ConfigDocument::new(
                DocumentKind::SiteConfiguration,
                text,
                file_provenance(p),
            ));
        }
        if let Some(p) = &paths.global_settings {
            let text = read_text(p).await?;
            documents.push(ConfigDocument::new(
                DocumentKind::GlobalSettings,
                text,
                file_provenance(p),
            ));
        }
        let mut extsvc_file_text = None;
        if let Some(p) = &paths.extsvc_config {
            let text = read_text(p).await?;
            documents.extend(parse_extsvc_file(&text, p)?);
            extsvc_file_text = Some(text);
        }
        for d in &documents {
            validate_document(d)?;
        }
        let sources: Vec<String> = paths
            .site_config
            .iter()
            .chain(&paths.global_settings)
            .chain(&paths.extsvc_config)
            .map(|p| p.display().to_string())
            .collect();
        Ok(ConfigSnapshot {
            documents,
            source: format!("files {}", sources.join(", ")),
            taken_at: Some(Utc::now()),
            extsvc_file_text,
            warnings: Vec::new(),
        })
    }

    /// [`from_files`](Self::from_files) with the paths of `SITE_CONFIG_FILE`,
    /// `GLOBAL_SETTINGS_FILE` and `EXTSVC_CONFIG_FILE`.
    pub async fn from_env_files() -> Result<ConfigSnapshot, ConfigError> {
        Self::from_files(&ConfigFilePaths::from_env()).await
    }

    /// The three files in the formats Sourcegraph loads at start-up, as (file name, text):
    /// `site-config.json` (or `site-config-<n>.json` when several), `global-settings.json`,
    /// `extsvc-config.json`. Fails on encrypted documents (their plaintext is unknown).
    pub fn file_layout(&self) -> Result<Vec<(String, String)>, ConfigError> {
        if let Some(d) = self.encrypted().next() {
            return Err(ConfigError::Unsupported {
                reason: format!("{} is encrypted; configuration files need plaintext", d.name()),
            });
        }
        let mut out = Vec::new();
        let sites: Vec<&ConfigDocument> = self.site_configurations().collect();
        for (i, d) in sites.iter().enumerate() {
            let name = if sites.len() == 1 {
                SITE_FILE_NAME.to_owned()
            } else {
                format!("site-config-{}.json", i + 1)
            };
            out.push((name, d.text.clone()));
        }
        if let Some(d) = self.global_settings() {
            out.push((SETTINGS_FILE_NAME.to_owned(), d.text.clone()));
        }
        let hosts: Vec<&ConfigDocument> = self.code_hosts().collect();
        if !hosts.is_empty() {
            out.push((EXTSVC_FILE_NAME.to_owned(), self.extsvc_text()?));
        }
        Ok(out)
    }

    /// The `EXTSVC_CONFIG_FILE` text: the file as read when the code host documents are still
    /// exactly its entries, else the documents' texts spliced unchanged into
    /// `{"KIND": [ <text>, ... ], ...}`.
    pub fn extsvc_text(&self) -> Result<String, ConfigError> {
        let hosts: Vec<&ConfigDocument> = self.code_hosts().collect();
        if let Some(original) = &self.extsvc_file_text {
            if let Ok(parsed) = parse_extsvc_file(original, Path::new(EXTSVC_FILE_NAME)) {
                let same = parsed.len() == hosts.len()
                    && parsed
                        .iter()
                        .zip(&hosts)
                        .all(|(a, b)| a.text == b.text && a.kind.code_host_kind() == b.kind.code_host_kind());
                if same {
                    return Ok(original.clone());
                }
            }
        }
        Ok(splice_extsvc(&hosts))
    }

    /// Validates every document as an import would ([`validate_snapshot`]: parses, required
    /// fields, no secret holding Sourcegraph's `REDACTED` marker), then writes
    /// [`file_layout`](Self::file_layout) to `paths`, each file written to a temporary name and
    /// renamed. Nothing is written when a document is invalid, a needed path is missing, or,
    /// unless `overwrite`, any of the files in `paths` already exists
    /// ([`ConfigError::TargetExists`], naming them).
    ///
    /// The files are private whatever the umask: `0600`, in directories created `0700`
    /// (directories that existed keep their mode). Returns warnings for the operator.
    pub async fn write_files(
        &self,
        paths: &ConfigFilePaths,
        overwrite: bool,
    ) -> Result<Vec<String>, ConfigError> {
        let plan = self.plan_files(paths, overwrite).await?;
        plan.write().await?;
        Ok(plan.warnings)
    }

    /// Everything [`write_files`](Self::write_files) checks, without writing: what would be
    /// written and replaced.
    pub(crate) async fn plan_files(
        &self,
        paths: &ConfigFilePaths,
        overwrite: bool,
    ) -> Result<FilesPlan, ConfigError> {
        validate_snapshot(self)?;
        let layout = self.file_layout()?;
        let sites = layout
            .iter()
            .filter(|(n, _)| n.starts_with("site-config"))
            .count();
        if sites > 0 && sites != paths.site_config.len() {
            return Err(ConfigError::Unsupported {
                reason: format!(
                    "{sites} site configuration document(s) need as many SITE_CONFIG_FILE paths, {} given",
                    paths.site_config.len()
                ),
            });
        }
        let mut writes: Vec<(PathBuf, String)> = Vec::new();
        let mut site_paths = paths.site_config.iter();
        for (name, text) in layout {
            let path = if name.starts_with("site-config") {
                site_paths.next().cloned()
            } else if name == SETTINGS_FILE_NAME {
                paths.global_settings.clone()
            } else {
                paths.extsvc_config.clone()
            };
            let Some(path) = path else {
                return Err(ConfigError::Unsupported {
                    reason: format!("the snapshot has {name} but no path was given for it"),
                });
            };
            writes.push((path, text));
        }
        let mut existing = Vec::new();
        for p in paths
            .site_config
            .iter()
            .chain(&paths.global_settings)
            .chain(&paths.extsvc_config)
        {
            match tokio::fs::symlink_metadata(p).await {
                Ok(_) => existing.push(p.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ConfigError::io("inspect", p)(e)),
            }
        }
        if !existing.is_empty() && !overwrite {
            return Err(ConfigError::TargetExists { files: existing });
        }
        let (replaced, left): (Vec<PathBuf>, Vec<PathBuf>) = existing
            .into_iter()
            .partition(|p| writes.iter().any(|(w, _)| w == p));
        let mut warnings = Vec::new();
        for p in &left {
            warnings.push(format!(
                "{} was left as it was: the backup holds no document for it",
                p.display()
            ));
        }
        if self.code_hosts().next().is_some() {
            warnings.push(EXTSVC_FILE_WARNING.to_owned());
        }
        Ok(FilesPlan {
            writes,
            replaced,
            warnings,
        })
    }
}

/// What writing a snapshot as files does (see [`ConfigSnapshot::write_files`]).
pub(crate) struct FilesPlan {
    /// Each file and its text.
    pub(crate) writes: Vec<(PathBuf, String)>,
    /// Files that exist and will be replaced (only with `overwrite`).
    pub(crate) replaced: Vec<PathBuf>,
    /// For the operator.
    pub(crate) warnings: Vec<String>,
}

impl FilesPlan {
    /// Writes every file, private.
    pub(crate) async fn write(&self) -> Result<(), ConfigError> {
        for (path, text) in &self.writes {
            write_atomically(path, text.as_bytes()).await?;
        }
        Ok(())
    }

    /// The files written, for reports.
    pub(crate) fn written(&self) -> Vec<String> {
        self.writes.iter().map(|(p, _)| p.display().to_string()).collect()
    }

    /// The files replaced, for reports.
    pub(crate) fn replaced(&self) -> Vec<String> {
        self.replaced.iter().map(|p| p.display().to_string()).collect()
    }
}

/// The entries of an `EXTSVC_CONFIG_FILE`: each element's text is its exact slice of the file.
pub(crate) fn parse_extsvc_file(text: &str, path: &Path) -> Result<Vec<ConfigDocument>, ConfigError> {
    let name = format!("code host connections file {}", path.display());
    let obj = parse_object(&name, text)?;
    let mut docs = Vec::new();
    for prop in &obj.properties {
        let kind = prop.name.as_str().to_ascii_uppercase();
        let Value::Array(arr) = &prop.value else {
            let (line, column) = line_column(text, prop.value.start());
            return Err(ConfigError::InvalidDocument {
                document: name,
                reason: format!(
                    "{kind} must be an array of code host configurations, found {}",
                    value_type(&prop.value)
                ),
                line,
                column,
            });
        };
        for (i, e) in arr.elements.iter().enumerate() {
            let r = e.range();
            docs.push(ConfigDocument::new(
                DocumentKind::CodeHostConnection {
                    display_name: format!("{kind} #{}", i + 1),
                    kind: kind.clone(),
                    id: None,
                },
                &text[r.start..r.end],
                file_provenance(path),
            ));
        }
    }
    Ok(docs)
}

/// `{"KIND": [\n<text>\n,\n<text>\n], ...}`: a newline follows every text so that a trailing
/// line comment cannot swallow the comma.
fn splice_extsvc(hosts: &[&ConfigDocument]) -> String {
    let mut kinds: Vec<&str> = Vec::new();
    for h in hosts {
        if let Some(k) = h.kind.code_host_kind() {
            if !kinds.contains(&k) {
                kinds.push(k);
            }
        }
    }
    let mut out = String::from("{\n");
    for (ki, kind) in kinds.iter().enumerate() {
        out.push_str(&format!(
            "  {}: [\n",
            serde_json::Value::String((*kind).to_owned())
        ));
        let texts: Vec<&str> = hosts
            .iter()
            .filter(|h| h.kind.code_host_kind() == Some(kind))
            .map(|h| h.text.as_str())
            .collect();
        for (i, t) in texts.iter().enumerate() {
            out.push_str(t);
            out.push('\n');
            if i + 1 < texts.len() {
                out.push_str(",\n");
            }
        }
        out.push_str("  ]");
        if ki + 1 < kinds.len() {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str("}\n");
    out
}

fn file_provenance(p: &Path) -> Provenance {
    Provenance {
        source: p.display().to_string(),
        ..Provenance::default()
    }
}

/// Reads a configuration file: a regular file (symbolic links followed) of at most
/// [`MAX_CONFIG_FILE_SIZE`] bytes, read through a cap so that even a size that lies stops.
async fn read_text(p: &Path) -> Result<String, ConfigError> {
    // Checked before opening: opening a FIFO for reading would wait for a writer.
    let meta = tokio::fs::metadata(p).await.map_err(ConfigError::io("read", p))?;
    check_regular(p, &meta)?;
    let file = tokio::fs::File::open(p)
        .await
        .map_err(ConfigError::io("read", p))?;
    // And again on what was opened, in case the name was swapped in between.
    let meta = file.metadata().await.map_err(ConfigError::io("read", p))?;
    check_regular(p, &meta)?;
    let bytes = read_capped(file, MAX_CONFIG_FILE_SIZE, p).await?;
    String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        path: p.to_path_buf(),
    })
}

fn check_regular(p: &Path, meta: &std::fs::Metadata) -> Result<(), ConfigError> {
    if !meta.is_file() {
        return Err(ConfigError::NotRegularFile {
            path: p.to_path_buf(),
            what: file_type_name(&meta.file_type()),
        });
    }
    if meta.len() > MAX_CONFIG_FILE_SIZE {
        return Err(ConfigError::FileTooLarge {
            path: p.to_path_buf(),
            limit: MAX_CONFIG_FILE_SIZE,
        });
    }
    Ok(())
}

fn file_type_name(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "character device";
        }
        if t.is_block_device() {
            return "block device";
        }
        if t.is_fifo() {
            return "FIFO";
        }
        if t.is_socket() {
            return "socket";
        }
    }
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Reads at most `cap` bytes of `reader`; more is [`ConfigError::FileTooLarge`].
async fn read_capped(reader: impl AsyncRead + Unpin, cap: u64, p: &Path) -> Result<Vec<u8>, ConfigError> {
    let mut bytes = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .await
        .map_err(ConfigError::io("read", p))?;
    if bytes.len() as u64 > cap {
        return Err(ConfigError::FileTooLarge {
            path: p.to_path_buf(),
            limit: cap,
        });
    }
    Ok(bytes)
}

/// Writes `bytes` to `<path>.tmp-sgbackup` (created `0600`) then renames it over `path`; missing
/// parent directories are created `0700`. The temporary file is removed on failure.
pub(crate) async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dirs(dir).await?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp-sgbackup");
    let tmp = PathBuf::from(tmp);
    // A leftover of an earlier run may have any mode: start from a new file.
    match tokio::fs::remove_file(&tmp).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ConfigError::io("remove", &tmp)(e)),
    }
    let result = write_private(&tmp, bytes).await;
    let result = match result {
        Ok(()) => tokio::fs::rename(&tmp, path)
            .await
            .map_err(ConfigError::io("rename into", path)),
        Err(e) => Err(e),
    };
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Creates `path` (which must not exist) `0600`, whatever the umask, then writes and syncs it.
async fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .await
        .map_err(ConfigError::io("create", path))?;
    // The umask may have taken bits away (never added any): set the mode exactly, before the
    // secrets are written.
    sourcegraph_backup_core::repository::make_file_private(path)
        .map_err(ConfigError::io("make private", path))?;
    file.write_all(bytes)
        .await
        .map_err(ConfigError::io("write", path))?;
    file.sync_all().await.map_err(ConfigError::io("write", path))
}

/// Creates `dir` and any missing parents, each new one `0700` whatever the umask; directories
/// that exist keep their mode (they may be shared parents).
async fn create_private_dirs(dir: &Path) -> Result<(), ConfigError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.as_os_str().is_empty() {
            break;
        }
        match tokio::fs::symlink_metadata(d).await {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing.push(d.to_path_buf()),
            Err(e) => return Err(ConfigError::io("inspect", d)(e)),
        }
        cur = d.parent();
    }
    for d in missing.iter().rev() {
        match tokio::fs::create_dir(d).await {
            Ok(()) => set_dir_private(d).await?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ConfigError::io("create directory", d)(e)),
        }
    }
    Ok(())
}

#[cfg(unix)]
async fn set_dir_private(dir: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(ConfigError::io("make private", dir))
}

#[cfg(not(unix))]
async fn set_dir_private(_dir: &Path) -> Result<(), ConfigError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn reading_stops_at_the_cap_whatever_the_size_says() {
        // An endless reader, like a file whose size lies: the cap stops it.
        let endless = tokio::io::repeat(b'x');
        let err = read_capped(endless, 1024, Path::new("/cfg/site.json"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ConfigError::FileTooLarge { limit: 1024, path } if path == Path::new("/cfg/site.json")),
            "{err}"
        );
        let exact = read_capped(&b"0123456789"[..], 10, Path::new("f")).await.unwrap();
        assert_eq!(exact, b"0123456789");
        let err = read_capped(&b"0123456789!"[..], 10, Path::new("f"))
            .await
            .unwrap_err();
        assert!(matches!(err, ConfigError::FileTooLarge { .. }), "{err}");
        let msg = ConfigError::FileTooLarge {
            path: "/cfg/site.json".into(),
            limit: MAX_CONFIG_FILE_SIZE,
        }
        .to_string();
        assert!(
            msg.contains("/cfg/site.json") && msg.contains("(16 MiB)"),
            "{msg}"
        );
    }

    #[test]
    fn splice_round_trips_texts_with_trailing_line_comments() {
        let docs: Vec<ConfigDocument> = ["{\"a\": 1} // c", "{\r\n\"b\": 2,\r\n}", "{}"]
            .iter()
            .zip(["GITHUB", "GITHUB", "OTHER"])
            .map(|(t, k)| {
                ConfigDocument::new(
                    DocumentKind::CodeHostConnection {
                        kind: k.into(),
                        display_name: "n".into(),
                        id: Some(1),
                    },
                    *t,
                    Provenance::default(),
                )
            })
            .collect();
        let refs: Vec<&ConfigDocument> = docs.iter().collect();
        let text = splice_extsvc(&refs);
        let parsed = parse_extsvc_file(&text, Path::new("x")).unwrap();
        assert_eq!(parsed.len(), 3);
        // The element slice stops at the closing brace: a trailing comment stays outside it.
        assert_eq!(parsed[0].text, "{\"a\": 1}");
        assert_eq!(parsed[1].text, docs[1].text);
        assert_eq!(parsed[2].kind.code_host_kind(), Some("OTHER"));
        assert!(
            matches!(&parsed[1].kind, DocumentKind::CodeHostConnection { display_name, .. } if display_name == "GITHUB #2")
        );
    }
}
