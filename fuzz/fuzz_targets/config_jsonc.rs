//! The configuration crate's JSONC parsing, validation and redaction on
//! arbitrary documents: the first input byte picks the document kind (site
//! configuration, global settings, or a code host connection of one of
//! several kinds), the rest is the document text.
//!
//! Invariants: nothing panics; the parse-based functions agree on whether
//! the text parses; the redacted text parses again, has the same secret
//! fields, and every one of them holds Sourcegraph's redaction marker (so no
//! secret value is left in it), except the URL fields whose value has no
//! password to hide; `Debug` and `Display` of a document never show its text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sourcegraph_backup_config::jsonc::validate_document;
use sourcegraph_backup_config::redact::secret_fields;
use sourcegraph_backup_config::validate::validate_for_import;
use sourcegraph_backup_config::{
    encryption_keys, find_redacted_secrets, redacted_text, ConfigDocument, DocumentKind, Provenance,
};

const CODE_HOSTS: &[&str] = &[
    "GITHUB",
    "GITLAB",
    "BITBUCKETSERVER",
    "BITBUCKETCLOUD",
    "AWSCODECOMMIT",
    "PERFORCE",
    "JVMPACKAGES",
    "NPMPACKAGES",
    "GOMODULES",
    "OTHER",
    "GITOLITE",
    "AZUREDEVOPS",
    "NEWKIND",
];

fn kind(selector: u8) -> DocumentKind {
    match selector as usize % (CODE_HOSTS.len() + 2) {
        0 => DocumentKind::SiteConfiguration,
        1 => DocumentKind::GlobalSettings,
        n => DocumentKind::CodeHostConnection {
            kind: CODE_HOSTS[n - 2].into(),
            display_name: "fuzz".into(),
            id: Some(1),
        },
    }
}

/// Secret fields whose rule only masks a URL's password: a value without one
/// is left as it is, so it carries no marker after redaction.
fn url_rule(kind: &DocumentKind, path: &str) -> bool {
    match kind.code_host_kind() {
        Some("GOMODULES") => path.starts_with("urls[") && path.ends_with(']') && !path[5..].contains('.'),
        Some("OTHER") => path == "url",
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let doc = ConfigDocument::new(kind(selector), text, Provenance::default());

    let debug = format!("{doc:?}");
    let display = format!("{doc}");
    if text.len() >= 24 {
        assert!(
            !debug.contains(text) && !display.contains(text),
            "a document's text in its Debug/Display"
        );
    }

    let parses = validate_document(&doc);
    let redacted = redacted_text(&doc);
    let fields = secret_fields(&doc);
    let marked = find_redacted_secrets(&doc);
    let import = validate_for_import(&doc);
    let _ = encryption_keys(&doc);
    assert_eq!(
        parses.is_ok(),
        redacted.is_ok(),
        "validate_document and redacted_text disagree"
    );
    assert_eq!(
        parses.is_ok(),
        fields.is_ok(),
        "validate_document and secret_fields disagree"
    );
    assert_eq!(
        parses.is_ok(),
        marked.is_ok(),
        "validate_document and find_redacted_secrets disagree"
    );
    if parses.is_err() {
        assert!(
            import.is_err(),
            "a document that does not parse passes validate_for_import"
        );
        return;
    }
    let (redacted, fields, marked) = (redacted.unwrap(), fields.unwrap(), marked.unwrap());
    if import.is_ok() {
        assert!(
            marked.is_empty(),
            "validate_for_import accepts redacted secrets {marked:?}"
        );
    }

    let rdoc = ConfigDocument::new(doc.kind.clone(), redacted.clone(), Provenance::default());
    if let Err(e) = validate_document(&rdoc) {
        panic!("the redacted text does not parse: {e}");
    }
    let rfields = secret_fields(&rdoc).expect("redacted text parses");
    assert_eq!(rfields, fields, "redaction changed the secret fields");
    let rmarked = find_redacted_secrets(&rdoc).expect("redacted text parses");
    let expected: Vec<&String> = fields.iter().filter(|p| !url_rule(&doc.kind, p)).collect();
    let got: Vec<&String> = rmarked.iter().filter(|p| !url_rule(&doc.kind, p)).collect();
    assert_eq!(
        got, expected,
        "secret fields left without the marker after redaction"
    );
    if fields.is_empty() {
        assert_eq!(redacted, text, "a document without secrets changed in redaction");
    }
});
