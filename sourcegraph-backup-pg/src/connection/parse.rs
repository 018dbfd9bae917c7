//! Parsing of `postgres://` URLs and libpq `key=value` strings, and the redacted URL.
//!
//! Both forms become a list of `(key, value)` pairs applied in order, so the URL's query
//! parameters and the key=value form accept the same keys. Error messages never quote the input
//! string as a whole, since it may hold a password.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::config::{ChannelBinding, TargetSessionAttrs};

use super::{PgConnectionConfig, SslMode};
use crate::error::PgError;

fn invalid(reason: impl Into<String>) -> PgError {
    PgError::InvalidConnectionString {
        reason: reason.into(),
    }
}

/// Settings collected before defaults are applied.
#[derive(Default)]
pub(super) struct Builder {
    hosts: Vec<String>,
    hostaddrs: Vec<IpAddr>,
    ports: Vec<u16>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
    options: Option<String>,
    application_name: Option<String>,
    ssl_mode: Option<SslMode>,
    ssl_root_cert: Option<PathBuf>,
    ssl_cert: Option<PathBuf>,
    ssl_key: Option<PathBuf>,
    passfile: Option<PathBuf>,
    connect_timeout: Option<Duration>,
    keepalives: Option<bool>,
    keepalives_idle: Option<Duration>,
    target_session_attrs: Option<TargetSessionAttrs>,
    channel_binding: Option<ChannelBinding>,
}

/// Keys of other drivers (pgx, lib/pq) that Sourcegraph deployments put in their DSNs and that
/// mean nothing for a backup connection.
const IGNORED_KEYS: &[&str] = &[
    "timezone",
    "statement_cache_mode",
    "default_query_exec_mode",
    "statement_cache_capacity",
    "description_cache_capacity",
    "binary_parameters",
    "fallback_application_name",
    "disable_prepared_binary_result",
];

fn parse_seconds(key: &str, value: &str) -> Result<Duration, PgError> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| invalid(format!("{key} must be a whole number of seconds, got {value:?}")))
}

/// A file setting; empty means unset, as in libpq.
fn non_empty_path(value: &str) -> Option<PathBuf> {
    Some(value).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn parse_port(value: &str) -> Result<u16, PgError> {
    let trimmed = value.trim();
    match trimmed.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(invalid(format!("invalid port {trimmed:?} (expected 1-65535)"))),
    }
}

impl Builder {
    /// Applies one setting. Later settings override earlier ones.
    pub(super) fn apply(&mut self, key: &str, value: &str) -> Result<(), PgError> {
        match key {
            "host" => {
                self.hosts = value
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "hostaddr" => {
                self.hostaddrs = value
                    .split(',')
                    .map(|a| {
                        a.trim()
                            .parse::<IpAddr>()
                            .map_err(|_| invalid(format!("invalid hostaddr {a:?}")))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "port" => {
                self.ports = value
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .map(parse_port)
                    .collect::<Result<_, _>>()?;
            }
            "user" => self.user = Some(value.to_owned()),
            "password" => self.password = Some(value.to_owned()),
            "dbname" => self.dbname = Some(value.to_owned()).filter(|d| !d.is_empty()),
            "options" => self.options = Some(value.to_owned()),
            "application_name" => self.application_name = Some(value.to_owned()),
            "sslmode" => self.ssl_mode = Some(value.parse()?),
            "sslrootcert" => self.ssl_root_cert = non_empty_path(value),
            "sslcert" => self.ssl_cert = non_empty_path(value),
            "sslkey" => self.ssl_key = non_empty_path(value),
            "passfile" => self.passfile = non_empty_path(value),
            "connect_timeout" => self.connect_timeout = Some(parse_seconds(key, value)?),
            "keepalives_idle" => self.keepalives_idle = Some(parse_seconds(key, value)?),
            "keepalives" => {
                self.keepalives = Some(match value {
                    "1" => true,
                    "0" => false,
                    other => return Err(invalid(format!("keepalives must be 0 or 1, got {other:?}"))),
                });
            }
            "target_session_attrs" => {
                self.target_session_attrs = Some(match value {
                    "any" => TargetSessionAttrs::Any,
                    "read-write" => TargetSessionAttrs::ReadWrite,
                    "read-only" => TargetSessionAttrs::ReadOnly,
                    other => {
                        return Err(invalid(format!(
                            "target_session_attrs must be any, read-write or read-only, got {other:?}"
                        )))
                    }
                });
            }
            "channel_binding" => {
                self.channel_binding = Some(match value {
                    "disable" => ChannelBinding::Disable,
                    "prefer" => ChannelBinding::Prefer,
                    "require" => ChannelBinding::Require,
                    other => {
                        return Err(invalid(format!(
                            "channel_binding must be disable, prefer or require, got {other:?}"
                        )))
                    }
                });
            }
            "sslpassword" => {
                // The value is a secret: never quoted.
                return Err(invalid(
                    "sslpassword is not supported: encrypted client keys cannot be used; \
                     decrypt the key first (openssl pkey -in client.key -out client.plain.key) \
                     and give it as sslkey",
                ));
            }
            "sslcrl" | "sslcrldir" => {
                return Err(invalid(format!(
                    "{key} is not supported (certificate revocation lists are not implemented)"
                )));
            }
            k if IGNORED_KEYS.contains(&k) => {}
            other => return Err(invalid(format!("unknown connection option {other:?}"))),
        }
        Ok(())
    }

    /// Applies the defaults (host 127.0.0.1, user = `default_user`) and checks the host/port
    /// counts.
    pub(super) fn finish(self, default_user: &str) -> Result<PgConnectionConfig, PgError> {
        let mut hosts = self.hosts;
        if hosts.is_empty() && self.hostaddrs.is_empty() {
            hosts.push(super::DEFAULT_HOST.to_owned());
        }
        if !hosts.is_empty() && !self.hostaddrs.is_empty() && hosts.len() != self.hostaddrs.len() {
            return Err(invalid(format!(
                "{} hosts but {} hostaddrs (give one hostaddr per host)",
                hosts.len(),
                self.hostaddrs.len()
            )));
        }
        let host_count = hosts.len().max(self.hostaddrs.len());
        if self.ports.len() > 1 && self.ports.len() != host_count {
            return Err(invalid(format!(
                "{} ports for {} hosts (give one port, or one per host)",
                self.ports.len(),
                host_count
            )));
        }
        let user = self
            .user
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| default_user.to_owned());
        // libpq 16: the system trust store defaults to verify-full and refuses weaker modes.
        let system_roots = self.ssl_root_cert.as_deref() == Some(std::path::Path::new(super::SYSTEM_ROOTS));
        let ssl_mode = match self.ssl_mode {
            None if system_roots => SslMode::VerifyFull,
            Some(mode) if system_roots && mode != SslMode::VerifyFull => {
                return Err(super::weak_mode_with_system_roots(mode));
            }
            mode => mode.unwrap_or_default(),
        };
        Ok(PgConnectionConfig {
            hosts,
            hostaddrs: self.hostaddrs,
            ports: self.ports,
            user,
            password: self.password,
            dbname: self.dbname,
            options: self.options,
            application_name: self.application_name,
            ssl_mode,
            files: Box::new(super::Files {
                ssl_root_cert: self.ssl_root_cert,
                ssl_cert: self.ssl_cert,
                ssl_key: self.ssl_key,
                passfile: self.passfile,
            }),
            connect_timeout: self.connect_timeout,
            keepalives: self.keepalives,
            keepalives_idle: self.keepalives_idle,
            target_session_attrs: self.target_session_attrs,
            channel_binding: self.channel_binding,
        })
    }
}

/// Whether `s` looks like a URL rather than key=value.
fn is_url(s: &str) -> bool {
    let lower = s.trim_start().to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

pub(super) fn from_any(s: &str, default_user: &str) -> Result<PgConnectionConfig, PgError> {
    if is_url(s) {
        from_url(s, default_user)
    } else if s.contains('=') {
        from_key_value(s, default_user)
    } else if s.contains("://") {
        Err(invalid("only postgres:// and postgresql:// URLs are supported"))
    } else {
        Err(invalid(
            "expected a postgres:// URL or libpq key=value pairs (host=... dbname=...)",
        ))
    }
}

pub(super) fn from_url(url: &str, default_user: &str) -> Result<PgConnectionConfig, PgError> {
    let url = url.trim();
    let rest = url
        .split_once("://")
        .filter(|(scheme, _)| {
            scheme.eq_ignore_ascii_case("postgres") || scheme.eq_ignore_ascii_case("postgresql")
        })
        .map(|(_, rest)| rest)
        .ok_or_else(|| invalid("URL must start with postgres:// or postgresql://"))?;
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (netloc, path) = match before_query.split_once('/') {
        Some((n, p)) => (n, Some(p)),
        None => (before_query, None),
    };
    let mut b = Builder::default();
    // The user info ends at the last '@': an unencoded '@' in a password is common.
    let hostspec = match netloc.rsplit_once('@') {
        Some((userinfo, hostspec)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            b.user = Some(decode(user, "user")?).filter(|u| !u.is_empty());
            if let Some(p) = password {
                b.password = Some(decode(p, "password")?);
            }
            hostspec
        }
        None => netloc,
    };
    parse_hostspec(hostspec, &mut b)?;
    if let Some(p) = path {
        let db = decode(p, "database name")?;
        b.dbname = Some(db).filter(|d| !d.is_empty());
    }
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| invalid("URL query parameter without '=' value"))?;
        let key = decode(k, "query parameter name")?;
        let value = decode(v, &format!("value of {key}"))?;
        b.apply(&key, &value)?;
    }
    b.finish(default_user)
}

/// `host[:port],host[:port]`, with `[v6]` literals and percent-encoded socket paths.
fn parse_hostspec(spec: &str, b: &mut Builder) -> Result<(), PgError> {
    if spec.is_empty() {
        return Ok(());
    }
    let mut hosts = Vec::new();
    let mut ports: Vec<Option<u16>> = Vec::new();
    for part in spec.split(',') {
        let (host, port) = if let Some(v6) = part.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("unterminated [ in URL host"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| invalid("junk after ] in URL host"))?,
                ),
            };
            (addr.to_owned(), port)
        } else {
            match part.split_once(':') {
                Some((h, p)) => (decode(h, "host")?, Some(p)),
                None => (decode(part, "host")?, None),
            }
        };
        hosts.push(host);
        ports.push(port.filter(|p| !p.is_empty()).map(parse_port).transpose()?);
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        b.hosts = hosts.into_iter().filter(|h| !h.is_empty()).collect();
    }
    if ports.iter().any(Option::is_some) {
        b.ports = ports
            .into_iter()
            .map(|p| p.unwrap_or(super::DEFAULT_PORT))
            .collect();
    }
    Ok(())
}

/// Percent-decodes one URL component; `what` names it in errors (the value is never quoted).
fn decode(s: &str, what: &str) -> Result<String, PgError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(format!("invalid percent-encoding in {what}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid(format!("{what} is not valid UTF-8 once decoded")))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Parses libpq's `key = value` syntax: values may be single-quoted, `\` escapes the next
/// character in quoted and unquoted values alike.
pub(super) fn from_key_value(s: &str, default_user: &str) -> Result<PgConnectionConfig, PgError> {
    let mut b = Builder::default();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // The word is not quoted back: it may be the tail of an unquoted password.
            return Err(invalid(
                "missing '=' after a key (quote values containing spaces: key='a b')",
            ));
        }
        if key.is_empty() {
            return Err(invalid("empty key before '='"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => {
                        return Err(invalid(format!("unterminated quoted value for {key}")));
                    }
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(invalid(format!("unterminated quoted value for {key}"))),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        b.apply(&key, &value)?;
    }
    b.finish(default_user)
}

pub(super) fn redacted_url(c: &PgConnectionConfig) -> String {
    let mut url = format!("postgres://{}@", encode(&c.user));
    let hosts: Vec<String> = c
        .hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            // Only an IPv6 address goes in brackets: there the parser takes the text verbatim, so
            // a socket directory or name holding ':' (and '/', '@', ']') is percent-encoded.
            let h = if h.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6()) {
                format!("[{h}]")
            } else {
                encode(h)
            };
            format!("{h}:{}", c.port_of(i))
        })
        .collect();
    url.push_str(&hosts.join(","));
    url.push('/');
    url.push_str(&encode(c.dbname()));
    let _ = write!(url, "?sslmode={}", c.ssl_mode);
    for (key, path) in [
        ("sslrootcert", &c.files.ssl_root_cert),
        ("sslcert", &c.files.ssl_cert),
        ("sslkey", &c.files.ssl_key),
        ("passfile", &c.files.passfile),
    ] {
        if let Some(path) = path {
            let _ = write!(url, "&{key}={}", encode(&path.to_string_lossy()));
        }
    }
    url
}
