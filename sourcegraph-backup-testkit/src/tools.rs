//! PostgreSQL client programs (pg_dump, pg_restore, psql) new enough for a given server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::tools_dir;
use crate::error::{HarnessError, Result};
use crate::process::{major_of, scrub_pg_env};

/// A directory of PostgreSQL client programs of one major version, plus the library directory
/// they need on `LD_LIBRARY_PATH` (the PyPI `pgserver` build).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgClientTools {
    bin_dir: PathBuf,
    lib_dir: Option<PathBuf>,
    major: u32,
}

impl PgClientTools {
    /// The clients of the lowest major that is >= `server_major` (pg_dump refuses servers newer
    /// than itself), among `/usr/lib/postgresql/*/bin`, `<tools_dir>/pgserver/bin` (PostgreSQL
    /// 16.2 from the PyPI `pgserver` wheel, see `scripts/install-test-deps.sh`) and `/usr/bin`.
    pub fn for_server_major(server_major: u32) -> Result<Self> {
        let mut candidates: Vec<(PathBuf, Option<PathBuf>)> = crate::cluster::debian_bin_dirs_for_clients()
            .into_iter()
            .map(|dir| (dir, None))
            .collect();
        let pgserver = tools_dir().join("pgserver");
        candidates.push((pgserver.join("bin"), Some(pgserver.join("lib"))));
        candidates.push((PathBuf::from("/usr/bin"), None));

        let mut best: Option<Self> = None;
        for (bin_dir, lib_dir) in &candidates {
            let Ok(tools) = Self::at(bin_dir, lib_dir.as_deref()) else {
                continue;
            };
            if tools.major >= server_major && best.as_ref().is_none_or(|b| tools.major < b.major) {
                best = Some(tools);
            }
        }
        best.ok_or_else(|| HarnessError::ClientToolsNotFound {
            major: server_major,
            searched: candidates
                .iter()
                .map(|(d, _)| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Uses the clients in `bin_dir` (with `lib_dir` on `LD_LIBRARY_PATH` if given); fails unless
    /// pg_dump, pg_restore and psql are there and `pg_dump --version` runs.
    pub fn at(bin_dir: &Path, lib_dir: Option<&Path>) -> Result<Self> {
        let missing: Vec<&str> = ["pg_dump", "pg_restore", "psql"]
            .into_iter()
            .filter(|p| !crate::cluster::is_executable(&bin_dir.join(p)))
            .collect();
        if !missing.is_empty() {
            return Err(HarnessError::ClientToolsNotFound {
                major: 0,
                searched: format!("{} (missing {})", bin_dir.display(), missing.join(", ")),
            });
        }
        let mut tools = Self {
            bin_dir: bin_dir.to_path_buf(),
            lib_dir: lib_dir.map(Path::to_path_buf),
            major: 0,
        };
        tools.major = major_of(tools.command("pg_dump"), &tools.program("pg_dump"))?;
        Ok(tools)
    }

    /// A command for `tool` ("pg_dump", "pg_restore", "psql", ...) with `LD_LIBRARY_PATH` set
    /// when these clients need it, and libpq environment variables (PGHOST, PGPORT, ...) removed.
    pub fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.program(tool));
        scrub_pg_env(&mut cmd);
        if let Some(lib) = &self.lib_dir {
            let mut paths = vec![lib.clone()];
            if let Some(existing) = std::env::var_os("LD_LIBRARY_PATH") {
                paths.extend(std::env::split_paths(&existing));
            }
            if let Ok(joined) = std::env::join_paths(paths) {
                cmd.env("LD_LIBRARY_PATH", joined);
            }
        }
        cmd
    }

    /// Same as [`Self::command`], as a tokio command.
    pub fn tokio_command(&self, tool: &str) -> tokio::process::Command {
        tokio::process::Command::from(self.command(tool))
    }

    /// Path of `tool` in [`Self::bin_dir`].
    pub fn program(&self, tool: &str) -> PathBuf {
        self.bin_dir.join(tool)
    }

    /// Directory of the programs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Directory that must be on `LD_LIBRARY_PATH`, if any.
    pub fn lib_dir(&self) -> Option<&Path> {
        self.lib_dir.as_deref()
    }

    /// Major version (from `pg_dump --version`).
    pub fn major(&self) -> u32 {
        self.major
    }
}
