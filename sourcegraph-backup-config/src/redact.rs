//! Redaction the way Sourcegraph's UI does it, applied to the original text.
//!
//! The redacted text is built by replacing the byte ranges of secret values in the original
//! text, so comments, key order and whitespace survive and diffs stay readable. Fields are the
//! ones Sourcegraph redacts (site configuration: `internal/conf/validate.go`; code hosts:
//! `internal/types/secret.go`), plus, as a safety net in every document, any string whose key
//! looks secret (token, password, secret, credential, `...key`) and the password part of URLs.
//! Over-redacting a view costs nothing; the data itself is never altered.

use jsonc_parser::ast::{Object, Value};
use jsonc_parser::common::Range;

use crate::error::ConfigError;
use crate::jsonc::parse_object;
use crate::model::{sha256_hex, ConfigDocument, DocumentKind};

/// The marker Sourcegraph writes in place of a secret.
pub const REDACTED: &str = "REDACTED";
/// The prefix of Sourcegraph's marker for alert notifier secrets.
pub const REDACTED_DATA_CHUNK: &str = "REDACTED-DATA-CHUNK";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Replaced by `REDACTED`.
    Plain,
    /// Replaced by `REDACTED-DATA-CHUNK-<first 10 hex of sha256>` (alert notifiers).
    DataChunk,
    /// Only the password of a URL's userinfo is replaced.
    UrlPassword,
}

/// Site configuration fields, as dotted paths (`[]` = any array element). Site configuration
/// keys are themselves often dotted (`"email.smtp"`), so nested and flat spellings match alike.
const SITE_RULES: &[(&str, Style)] = &[
    ("auth.providers[].clientSecret", Style::Plain),
    ("executors.accessToken", Style::Plain),
    ("email.smtp.username", Style::Plain),
    ("email.smtp.password", Style::Plain),
    ("organizationInvitations.signingKey", Style::Plain),
    ("githubClientSecret", Style::Plain),
    ("gitHubApp.privateKey", Style::Plain),
    ("gitHubApp.clientSecret", Style::Plain),
    ("dotcom.githubApp.cloud.clientSecret", Style::Plain),
    ("dotcom.githubApp.cloud.privateKey", Style::Plain),
    ("auth.unlockAccountLinkSigningKey", Style::Plain),
    ("dotcom.srcCliVersionCache.github.token", Style::Plain),
    ("dotcom.srcCliVersionCache.github.webhookSecret", Style::Plain),
    ("embeddings.accessToken", Style::Plain),
    ("completions.accessToken", Style::Plain),
    ("app.dotcomAuthToken", Style::Plain),
    ("observability.alerts[].notifier.apiKey", Style::DataChunk),
    ("observability.alerts[].notifier.url", Style::DataChunk),
    ("observability.alerts[].notifier.integrationKey", Style::DataChunk),
    ("observability.alerts[].notifier.bearerToken", Style::DataChunk),
    ("observability.alerts[].notifier.password", Style::DataChunk),
];

/// Code host fields per kind.
fn code_host_rules(kind: &str) -> Option<&'static [(&'static str, Style)]> {
    Some(match kind.to_ascii_uppercase().as_str() {
        "GITHUB" | "GITLAB" | "PHABRICATOR" | "PAGURE" | "AZUREDEVOPS" => &[("token", Style::Plain)],
        "BITBUCKETSERVER" => &[("password", Style::Plain), ("token", Style::Plain)],
        "BITBUCKETCLOUD" => &[("appPassword", Style::Plain)],
        "AWSCODECOMMIT" => &[
            ("secretAccessKey", Style::Plain),
            ("gitCredentials.password", Style::Plain),
        ],
        "PERFORCE" => &[("p4.passwd", Style::Plain)],
        "JVMPACKAGES" => &[("maven.credentials", Style::Plain)],
        "NPMPACKAGES" => &[("credentials", Style::Plain)],
        "GOMODULES" => &[("urls[]", Style::UrlPassword)],
        "OTHER" => &[("url", Style::UrlPassword)],
        "GITOLITE" | "GERRIT" | "PYTHONPACKAGES" | "RUSTPACKAGES" | "RUBYPACKAGES" | "LOCALGIT" => &[],
        _ => return None,
    })
}

/// Whether a key names a secret (the safety net for unknown kinds and unlisted fields).
pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["token", "password", "passwd", "secret", "credential"]
        .iter()
        .any(|w| k.contains(w))
        || k.ends_with("key")
}

/// One secret value found in a document.
struct Secret {
    /// Path with indexes, e.g. `auth.providers[0].clientSecret`.
    path: String,
    range: Range,
    value: String,
    style: Style,
}

/// The document's text with every secret value replaced by `REDACTED` (see the module docs).
/// Encrypted documents give a placeholder. A document that does not parse is an error naming
/// the position, never quoting the text.
pub fn redacted_text(doc: &ConfigDocument) -> Result<String, ConfigError> {
    if let Some(enc) = &doc.encryption {
        return Ok(format!(
            "/* encrypted ({} bytes of ciphertext, key {}) */\n",
            doc.text.len(),
            enc.key_id
        ));
    }
    let secrets = find_secrets(doc)?;
    let mut out = String::with_capacity(doc.text.len());
    let mut at = 0;
    for s in &secrets {
        out.push_str(&doc.text[at..s.range.start]);
        out.push_str(&replacement(s));
        at = s.range.end;
    }
    out.push_str(&doc.text[at..]);
    Ok(out)
}

/// The secret fields that still hold Sourcegraph's redaction marker (`REDACTED`,
/// `REDACTED-DATA-CHUNK-...`, or `REDACTED` as a URL password): importing such a document would
/// lose the secret. Paths like `auth.providers[0].clientSecret`.
pub fn find_redacted_secrets(doc: &ConfigDocument) -> Result<Vec<String>, ConfigError> {
    if doc.is_encrypted() {
        return Ok(Vec::new());
    }
    Ok(find_secrets(doc)?
        .into_iter()
        .filter(|s| match s.style {
            Style::UrlPassword => url_password(&s.value).is_some_and(|(_, p, _)| p == REDACTED),
            _ => s.value == REDACTED || s.value.starts_with(REDACTED_DATA_CHUNK),
        })
        .map(|s| s.path)
        .collect())
}

/// The paths of the secret fields of a document (values not shown).
pub fn secret_fields(doc: &ConfigDocument) -> Result<Vec<String>, ConfigError> {
    if doc.is_encrypted() {
        return Ok(Vec::new());
    }
    Ok(find_secrets(doc)?.into_iter().map(|s| s.path).collect())
}

fn replacement(s: &Secret) -> String {
    let redacted = match s.style {
        Style::Plain => REDACTED.to_owned(),
        Style::DataChunk => {
            let h = sha256_hex(s.value.as_bytes());
            format!("{REDACTED_DATA_CHUNK}-{}", &h[..10])
        }
        Style::UrlPassword => match url_password(&s.value) {
            Some((before, _, after)) => format!("{before}{REDACTED}{after}"),
            None => s.value.clone(),
        },
    };
    serde_json::to_string(&redacted).unwrap_or_else(|_| format!("\"{REDACTED}\""))
}

/// Splits `scheme://user:password@host/...` into (up to the password, password, rest).
fn url_password(s: &str) -> Option<(&str, &str, &str)> {
    let scheme_end = s.find("://")? + 3;
    let authority_end = s[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(s.len(), |i| scheme_end + i);
    let at = s[scheme_end..authority_end].rfind('@')? + scheme_end;
    let colon = s[scheme_end..at].find(':')? + scheme_end;
    Some((&s[..=colon], &s[colon + 1..at], &s[at..]))
}

fn find_secrets(doc: &ConfigDocument) -> Result<Vec<Secret>, ConfigError> {
    let obj = parse_object(&doc.name(), &doc.text)?;
    let (rules, is_code_host): (&[(&str, Style)], bool) = match &doc.kind {
        DocumentKind::SiteConfiguration => (SITE_RULES, false),
        DocumentKind::GlobalSettings => (&[], false),
        DocumentKind::CodeHostConnection { kind, .. } => (code_host_rules(kind).unwrap_or(&[]), true),
    };
    let mut walker = Walker {
        rules,
        is_code_host,
        found: Vec::new(),
    };
    walker.object(&obj, &mut Vec::new());
    walker.found.sort_by_key(|s| s.range.start);
    Ok(walker.found)
}

#[derive(Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

struct Walker<'r> {
    rules: &'r [(&'r str, Style)],
    is_code_host: bool,
    found: Vec<Secret>,
}

impl Walker<'_> {
    fn object(&mut self, obj: &Object<'_>, path: &mut Vec<Seg>) {
        for p in &obj.properties {
            path.push(Seg::Key(p.name.as_str().to_owned()));
            self.value(&p.value, path);
            path.pop();
        }
    }

    fn value(&mut self, v: &Value<'_>, path: &mut Vec<Seg>) {
        match v {
            Value::Object(o) => self.object(o, path),
            Value::Array(a) => {
                for (i, e) in a.elements.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.value(e, path);
                    path.pop();
                }
            }
            Value::StringLit(s) => {
                if let Some(style) = self.style_of(path, &s.value) {
                    self.found.push(Secret {
                        path: display(path, true),
                        range: s.range,
                        value: s.value.to_string(),
                        style,
                    });
                }
            }
            _ => {}
        }
    }

    fn style_of(&self, path: &[Seg], value: &str) -> Option<Style> {
        let pattern = display(path, false);
        if let Some((_, style)) = self.rules.iter().find(|(r, _)| *r == pattern) {
            return Some(*style);
        }
        let nearest_key = path.iter().rev().find_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        });
        if nearest_key.is_some_and(looks_secret) {
            return Some(Style::Plain);
        }
        if self.is_code_host && url_password(value).is_some() {
            return Some(Style::UrlPassword);
        }
        None
    }
}

/// `a.b[0].c` (with indexes) or `a.b[].c` (pattern form).
fn display(path: &[Seg], indexes: bool) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) if indexes => out.push_str(&format!("[{i}]")),
            Seg::Index(_) => out.push_str("[]"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::model::Provenance;

    fn host(kind: &str, text: &str) -> ConfigDocument {
        ConfigDocument::new(
            DocumentKind::CodeHostConnection {
                kind: kind.into(),
                display_name: "x".into(),
                id: None,
            },
            text,
            Provenance::default(),
        )
    }

    #[test]
    fn code_host_token_is_replaced_and_comments_survive() {
        let d = host(
            "GITHUB",
            "{\r\n  // my token\r\n  \"url\": \"https://github.com\",\r\n  \"token\": \"ghp_s3cret\",\r\n}",
        );
        let r = redacted_text(&d).unwrap();
        assert_eq!(
            r,
            "{\r\n  // my token\r\n  \"url\": \"https://github.com\",\r\n  \"token\": \"REDACTED\",\r\n}"
        );
    }

    #[test]
    fn unknown_kind_redacts_secret_looking_keys_and_url_passwords() {
        let d = host(
            "NEWKIND",
            r#"{"apiKey": "k1", "nested": {"clientSecret": "k2"}, "keyname": "ok", "u": "https://me:pw@h/x"}"#,
        );
        let r = redacted_text(&d).unwrap();
        assert!(
            !r.contains("k1") && !r.contains("k2") && !r.contains("pw@"),
            "{r}"
        );
        assert!(r.contains("\"ok\"") && r.contains("https://me:REDACTED@h/x"));
    }

    #[test]
    fn site_config_fields_and_markers() {
        let d = ConfigDocument::new(
            DocumentKind::SiteConfiguration,
            r#"{"auth.providers": [{"type": "github", "clientSecret": "REDACTED"}], "email.smtp": {"password": "p"},
               "observability.alerts": [{"notifier": {"type": "slack", "url": "https://hooks"}}]}"#,
            Provenance::default(),
        );
        assert_eq!(
            find_redacted_secrets(&d).unwrap(),
            vec!["auth.providers[0].clientSecret"]
        );
        let r = redacted_text(&d).unwrap();
        assert!(r.contains("REDACTED-DATA-CHUNK-") && !r.contains("hooks") && !r.contains("\"p\""));
    }
}
