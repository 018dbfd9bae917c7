//! The password file, read as libpq reads it (`PGPASSFILE`, else `~/.pgpass`).
//!
//! Each line is `hostname:port:database:username:password`. A field that is exactly `*` matches
//! anything; `\:` and `\\` stand for a literal `:` and `\` (in the password too); lines starting
//! with `#` are comments. The first matching line wins, and an empty password counts as none.
//! A file that is not a plain file, or that the group or others may access (any of the mode
//! bits 077), is ignored with a warning on standard error, as libpq does.
//!
//! Passwords are kept as bytes (libpq compares and sends bytes) and never appear in a message.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The default password file below the home directory.
pub(crate) const DEFAULT_FILE: &str = ".pgpass";

/// Socket directories that libpq builds use as their default; a connection through one of them
/// is looked up as host `localhost`, as libpq does for its compiled-in default.
const DEFAULT_SOCKET_DIRS: &[&str] = &["/tmp", "/var/run/postgresql", "/run/postgresql"];

/// What one connection attempt is looked up by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// The host as the password file names it (see [`host_key`]).
    pub host: String,
    /// The port, in decimal.
    pub port: String,
    /// The database name.
    pub dbname: &'a str,
    /// The user name.
    pub user: &'a str,
}

/// The host field a connection is looked up by: the host (or `hostaddr` when no host was
/// given); a Unix socket directory that is a common default is `localhost`, others are matched
/// as their path.
pub(crate) fn host_key(host: &str) -> String {
    let trimmed = host.trim_end_matches('/');
    if host.is_empty() || DEFAULT_SOCKET_DIRS.contains(&trimmed) {
        "localhost".to_owned()
    } else {
        host.to_owned()
    }
}

/// Why a password file gave no password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The password of the first matching line.
    Found(Vec<u8>),
    /// The file was read, but no line matches (or the matching line's password is empty).
    NoMatch,
    /// There is no such file (not an error: libpq says nothing either).
    Missing,
    /// The file was ignored; the text is libpq's warning.
    Ignored(String),
}

/// Reads `path` and looks up the first of `targets` that a line matches.
pub(crate) fn lookup_file(path: &Path, targets: &[Target<'_>]) -> Outcome {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Missing,
        Err(e) => {
            return Outcome::Ignored(format!(
                "WARNING: password file \"{}\" cannot be read: {e}",
                path.display()
            ))
        }
    };
    if !meta.is_file() {
        return Outcome::Ignored(format!(
            "WARNING: password file \"{}\" is not a plain file",
            path.display()
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Outcome::Ignored(format!(
            "WARNING: password file \"{}\" has group or world access; permissions should be \
             u=rw (0600) or less",
            path.display()
        ));
    }
    let content = match fs::read(path) {
        Ok(c) => c,
        Err(e) => {
            return Outcome::Ignored(format!(
                "WARNING: password file \"{}\" cannot be read: {e}",
                path.display()
            ))
        }
    };
    targets
        .iter()
        .find_map(|t| lookup(&content, t))
        .map_or(Outcome::NoMatch, Outcome::Found)
}

/// The password of the first line of `content` that matches `target`; `None` when no line
/// matches or the matching line's password is empty.
pub(crate) fn lookup(content: &[u8], target: &Target<'_>) -> Option<Vec<u8>> {
    let fields = [
        target.host.as_bytes(),
        target.port.as_bytes(),
        target.dbname.as_bytes(),
        target.user.as_bytes(),
    ];
    for raw in content.split(|b| *b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() || line.first() == Some(&b'#') {
            continue;
        }
        let mut rest = Some(line);
        for want in fields {
            rest = rest.and_then(|r| match_field(r, want));
        }
        if let Some(password_field) = rest {
            // libpq stops at the first matching line, even when its password is empty.
            let password = unescape_password(password_field);
            return Some(password).filter(|p| !p.is_empty());
        }
    }
    None
}

/// libpq's `pwdfMatchesString`: if the field at the start of `line` matches `want` (or is `*`),
/// returns what follows its terminating `:`.
fn match_field<'a>(line: &'a [u8], want: &[u8]) -> Option<&'a [u8]> {
    if let Some(rest) = line.strip_prefix(b"*:") {
        return Some(rest);
    }
    let mut i = 0;
    let mut w = want.iter().peekable();
    while i < line.len() {
        let mut escaped = false;
        if line[i] == b'\\' {
            i += 1;
            escaped = true;
        }
        let c = *line.get(i)?;
        // An unescaped ':' ends the field once `want` is used up; before that it matches a ':'
        // of `want` (an IPv6 address), as in libpq.
        if c == b':' && !escaped && w.peek().is_none() {
            return Some(&line[i + 1..]);
        }
        if w.next() != Some(&c) {
            return None;
        }
        i += 1;
    }
    None
}

/// The password field up to the first unescaped `:`, with `\x` read as `x`.
fn unescape_password(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() && field[i] != b':' {
        if field[i] == b'\\' && i + 1 < field.len() {
            i += 1;
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

/// The password file to read: the connection's `passfile`, else `PGPASSFILE`, else
/// `$HOME/.pgpass` (`None` without a home directory).
pub(crate) fn file_path(
    explicit: Option<&Path>,
    lookup_env: impl Fn(&str) -> Option<String>,
) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_owned());
    }
    if let Some(p) = lookup_env("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    super::home_dir(lookup_env).map(|h| h.join(DEFAULT_FILE))
}
