//! Running external programs (initdb, pg_ctl, pg_dump, ...) and parsing their versions.

use std::path::Path;
use std::process::{Command, Output};

use crate::error::{HarnessError, Result};

/// Environment variables that would redirect libpq tools or the server away from what the
/// harness asks for explicitly.
const PG_ENV: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSSLMODE",
    "PGTZ",
    "PGCLIENTENCODING",
];

/// Removes libpq/server environment variables from `cmd`.
pub(crate) fn scrub_pg_env(cmd: &mut Command) -> &mut Command {
    for var in PG_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// The command line of `cmd`, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// The last `max_lines` lines of `text`.
pub(crate) fn tail(text: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    lines[start..].join("\n")
}

/// Runs `cmd` to completion and fails unless it exits with status 0.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<Output> {
    let output = cmd.output().map_err(|source| HarnessError::Spawn {
        program: describe(cmd),
        source,
    })?;
    if output.status.success() {
        return Ok(output);
    }
    let mut text = String::from_utf8_lossy(&output.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        text.push('\n');
        text.push_str(&stdout);
    }
    Err(HarnessError::CommandFailed {
        command: describe(cmd),
        status: output.status.to_string(),
        output: tail(&text, 30),
    })
}

/// Parses the major version from `postgres --version`-style output, e.g.
/// "pg_dump (PostgreSQL) 16.2" or "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)".
pub(crate) fn parse_major(output: &str) -> Option<u32> {
    let after = output.split(")").nth(1).unwrap_or(output);
    let version = after.split_whitespace().next()?;
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    major.parse().ok()
}

/// Runs `<program> --version` (with `cmd` prepared by the caller) and returns the major version.
pub(crate) fn major_of(mut cmd: Command, program: &Path) -> Result<u32> {
    let output = run_checked(cmd.arg("--version"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    parse_major(&text).ok_or_else(|| HarnessError::Version {
        program: program.to_path_buf(),
        output: text,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_major("pg_dump (PostgreSQL) 16.2\n"), Some(16));
        assert_eq!(
            parse_major("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("postgres (PostgreSQL) 12.22"), Some(12));
        assert_eq!(parse_major("postgres (PostgreSQL) 18beta1"), Some(18));
        assert_eq!(parse_major("garbage"), None);
    }
}
