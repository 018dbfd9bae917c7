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

use crate::error::ConfigError;
use crate::jsonc::{line_column, parse_object, validate_document, value_type};
use crate::model::{ConfigDocument, ConfigSnapshot, DocumentKind, Provenance};

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
    /// an error). Every document is validated; errors name the file and line:column.
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

    /// Validates every document, then writes [`file_layout`](Self::file_layout) to `paths`
    /// (each file written to a temporary name and renamed). Nothing is written when a document
    /// is invalid or a needed path is missing. Returns warnings for the operator.
    pub async fn write_files(&self, paths: &ConfigFilePaths) -> Result<Vec<String>, ConfigError> {
        for d in &self.documents {
            validate_document(d)?;
        }
        let layout = self.file_layout()?;
        let sites: Vec<&(String, String)> = layout
            .iter()
            .filter(|(n, _)| n.starts_with("site-config"))
            .collect();
        if !sites.is_empty() && sites.len() != paths.site_config.len() {
            return Err(ConfigError::Unsupported {
                reason: format!(
                    "{} site configuration document(s) need as many SITE_CONFIG_FILE paths, {} given",
                    sites.len(),
                    paths.site_config.len()
                ),
            });
        }
        let mut plan: Vec<(PathBuf, &str)> = Vec::new();
        let mut site_paths = paths.site_config.iter();
        for (name, text) in &layout {
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
            plan.push((path, text));
        }
        for (path, text) in plan {
            write_atomically(&path, text.as_bytes()).await?;
        }
        let mut warnings = Vec::new();
        if self.code_hosts().next().is_some() {
            warnings.push(EXTSVC_FILE_WARNING.to_owned());
        }
        Ok(warnings)
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

async fn read_text(p: &Path) -> Result<String, ConfigError> {
    let bytes = tokio::fs::read(p).await.map_err(ConfigError::io("read", p))?;
    String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        path: p.to_path_buf(),
    })
}

/// Writes `bytes` to `<path>.tmp-sgbackup` then renames it over `path`.
pub(crate) async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(ConfigError::io("create directory", dir))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp-sgbackup");
    let tmp = PathBuf::from(tmp);
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(ConfigError::io("write", &tmp))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(ConfigError::io("rename into", path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
