//! Running server programs as an unprivileged OS user: initdb and postgres refuse to run as root,
//! and the test machines run as root.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::error::{HarnessError, Result};
use crate::process::{describe, run_checked, scrub_pg_env};

/// The OS user that owns and runs clusters when the harness runs as root.
pub const CLUSTER_OS_USER: &str = "sgbtest";

/// Who runs the server programs: the current user, or [`CLUSTER_OS_USER`] via `runuser` when
/// the current user is root.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    unprivileged: Option<(u32, u32)>,
}

/// Bin directories already checked to be usable by the unprivileged user.
static CHECKED_BIN_DIRS: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

impl Runner {
    /// Prepares the runner, creating [`CLUSTER_OS_USER`] if we are root and it is missing.
    pub(crate) fn prepare() -> Result<Self> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(Self { unprivileged: None });
        }
        if lookup_id(CLUSTER_OS_USER, "-u").is_err() {
            let added = run_checked(
                Command::new("useradd")
                    .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin"])
                    .arg(CLUSTER_OS_USER),
            );
            // Another test process may have created it at the same moment: only the lookup
            // below decides.
            if let Err(e) = added {
                if lookup_id(CLUSTER_OS_USER, "-u").is_err() {
                    return Err(HarnessError::User {
                        user: CLUSTER_OS_USER.into(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        let uid = lookup_id(CLUSTER_OS_USER, "-u")?;
        let gid = lookup_id(CLUSTER_OS_USER, "-g")?;
        Ok(Self {
            unprivileged: Some((uid, gid)),
        })
    }

    /// A command running `program` as the cluster user, with libpq variables removed.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut cmd = match self.unprivileged {
            Some(_) => {
                let mut c = Command::new("runuser");
                c.args(["-u", CLUSTER_OS_USER, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        scrub_pg_env(&mut cmd);
        cmd
    }

    /// Gives `path` to the cluster user (no-op when not running as root).
    pub(crate) fn chown(&self, path: &Path) -> Result<()> {
        if let Some((uid, gid)) = self.unprivileged {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|source| HarnessError::Io {
                what: "chown to the cluster user",
                path: path.to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }

    /// Makes sure the cluster user can run the programs in `bin_dir`; if not, makes the
    /// installation tree (the parent of `bin_dir`) world-readable and tries again.
    pub(crate) fn ensure_can_run(&self, bin_dir: &Path, work_dir: &Path) -> Result<()> {
        if self.unprivileged.is_none() {
            return Ok(());
        }
        {
            let checked = CHECKED_BIN_DIRS.lock().unwrap_or_else(|p| p.into_inner());
            if checked.as_ref().is_some_and(|s| s.contains(bin_dir)) {
                return Ok(());
            }
        }
        let probe = |runner: &Self| {
            let mut cmd = runner.command(&bin_dir.join("postgres"));
            cmd.arg("--version").current_dir(work_dir);
            run_checked(&mut cmd)
        };
        if probe(self).is_err() {
            let root = bin_dir.parent().unwrap_or(bin_dir);
            let mut chmod = Command::new("chmod");
            chmod.args(["-R", "a+rX"]).arg(root);
            run_checked(&mut chmod)?;
            probe(self).map_err(|e| HarnessError::User {
                user: CLUSTER_OS_USER.into(),
                reason: format!(
                    "it cannot run {} even after `{}` (is a parent directory not \
                     world-executable?): {e}",
                    bin_dir.join("postgres").display(),
                    describe(&chmod),
                ),
            })?;
        }
        CHECKED_BIN_DIRS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(HashSet::new)
            .insert(bin_dir.to_path_buf());
        Ok(())
    }
}

/// `id -u USER` or `id -g USER`.
fn lookup_id(user: &str, flag: &str) -> Result<u32> {
    let output = run_checked(Command::new("id").arg(flag).arg(user))?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse().map_err(|_| HarnessError::User {
        user: user.into(),
        reason: format!("unexpected `id {flag}` output {text:?}"),
    })
}
