//! Validation before any write: documents parse to objects, code host connections have the
//! fields their kind requires, and no secret field holds Sourcegraph's redaction marker.

use jsonc_parser::ast::Object;

use crate::error::ConfigError;
use crate::jsonc::{non_empty_string, parse_object};
use crate::model::{ConfigDocument, ConfigSnapshot, DocumentKind};
use crate::redact::find_redacted_secrets;

/// Validates one document for import. Encrypted documents are only checked for a key id.
pub fn validate_for_import(doc: &ConfigDocument) -> Result<(), ConfigError> {
    if let Some(enc) = &doc.encryption {
        if enc.key_id.trim().is_empty() {
            return Err(ConfigError::Unsupported {
                reason: format!("{} is marked encrypted but has no key id", doc.name()),
            });
        }
        return Ok(());
    }
    let name = doc.name();
    let obj = parse_object(&name, &doc.text)?;
    if let Some(field) = find_redacted_secrets(doc)?.into_iter().next() {
        return Err(ConfigError::RedactedSecret {
            document: name,
            field,
        });
    }
    if let DocumentKind::CodeHostConnection { kind, .. } = &doc.kind {
        if let Some(field) = missing_field(kind, &obj) {
            return Err(ConfigError::MissingField {
                document: name,
                field,
            });
        }
    }
    Ok(())
}

/// Validates every document of a snapshot; the first problem is the error.
pub fn validate_snapshot(snapshot: &ConfigSnapshot) -> Result<(), ConfigError> {
    snapshot.documents.iter().try_for_each(validate_for_import)
}

/// The first required field (or set of alternatives) a code host config of `kind` lacks.
/// Unknown kinds only need to be objects.
fn missing_field(kind: &str, o: &Object<'_>) -> Option<String> {
    let has = |f: &str| non_empty_string(o, f).is_some();
    let has_any = |f: &str| o.get(f).is_some();
    let need: Vec<(&str, bool)> = match kind.to_ascii_uppercase().as_str() {
        "GITHUB" => vec![
            ("url", has("url")),
            (
                "token or gitHubAppDetails",
                has("token") || has_any("gitHubAppDetails"),
            ),
        ],
        "GITLAB" => vec![("url", has("url")), ("token", has("token"))],
        "BITBUCKETSERVER" => vec![
            ("url", has("url")),
            ("username", has("username")),
            ("token or password", has("token") || has("password")),
        ],
        "BITBUCKETCLOUD" => vec![("url", has("url")), ("username", has("username"))],
        "AWSCODECOMMIT" => vec![
            ("region", has("region")),
            ("accessKeyID", has("accessKeyID")),
            ("secretAccessKey", has("secretAccessKey")),
        ],
        "GITOLITE" => vec![("host", has("host")), ("prefix", has_any("prefix"))],
        "PERFORCE" => vec![
            ("p4.port", has("p4.port")),
            ("p4.user", has("p4.user")),
            ("p4.passwd", has("p4.passwd")),
        ],
        "OTHER" => vec![("url or repos", has("url") || has_any("repos"))],
        _ => Vec::new(),
    };
    need.into_iter().find(|(_, ok)| !ok).map(|(f, _)| f.to_owned())
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
                display_name: "h".into(),
                id: None,
            },
            text,
            Provenance::default(),
        )
    }

    #[test]
    fn required_fields_per_kind() {
        assert!(
            validate_for_import(&host("GITHUB", r#"{"url": "https://github.com", "token": "t"}"#)).is_ok()
        );
        let e = validate_for_import(&host("GITHUB", r#"{"url": "https://github.com"}"#)).unwrap_err();
        assert!(e.to_string().contains("token or gitHubAppDetails"), "{e}");
        let e = validate_for_import(&host("BITBUCKETSERVER", r#"{"url": "u", "token": "t"}"#)).unwrap_err();
        assert!(e.to_string().contains("username"), "{e}");
        assert!(validate_for_import(&host("SOMETHINGNEW", "{}")).is_ok());
        let e = validate_for_import(&host("GITLAB", r#"{"url": "u", "token": "REDACTED"}"#)).unwrap_err();
        assert!(e.to_string().contains("secret field token"), "{e}");
    }
}
