//! JSONC parsing as Sourcegraph accepts it: comments and trailing commas allowed, the document a
//! JSON object. Errors name the document and the line and column, never quote the text.

use jsonc_parser::ast::{Object, Value};
use jsonc_parser::errors::ParseErrorKind;
use jsonc_parser::{CollectOptions, ParseOptions, ParseStringErrorKind};

use crate::error::ConfigError;
use crate::model::ConfigDocument;

/// Sourcegraph's parser (a port of VS Code's JSONC) accepts comments and trailing commas, not the
/// JSON5 extensions jsonc-parser allows by default.
fn options() -> ParseOptions {
    ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// Parses `text` (named `document` in errors) to its top-level object.
pub(crate) fn parse_object<'a>(document: &str, text: &'a str) -> Result<Object<'a>, ConfigError> {
    let parsed = jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &options()).map_err(|e| {
        ConfigError::InvalidDocument {
            document: document.to_owned(),
            reason: describe(e.kind()),
            line: e.line_display(),
            column: e.column_display(),
        }
    })?;
    match parsed.value {
        Some(Value::Object(o)) => Ok(o),
        Some(other) => {
            let (line, column) = line_column(text, jsonc_parser::common::Ranged::start(&other));
            Err(ConfigError::InvalidDocument {
                document: document.to_owned(),
                reason: format!("must be a JSON object, found {}", value_type(&other)),
                line,
                column,
            })
        }
        None => {
            let (line, column) = line_column(text, text.len());
            Err(ConfigError::InvalidDocument {
                document: document.to_owned(),
                reason: "the document is empty; it must be a JSON object".into(),
                line,
                column,
            })
        }
    }
}

/// Checks that a plaintext document parses to an object; encrypted documents are skipped (their
/// text is ciphertext).
pub fn validate_document(doc: &ConfigDocument) -> Result<(), ConfigError> {
    if doc.is_encrypted() {
        return Ok(());
    }
    parse_object(&doc.name(), &doc.text).map(|_| ())
}

/// The error text of a parse error kind, without any quoted input.
fn describe(kind: &ParseErrorKind) -> String {
    match kind {
        ParseErrorKind::String(ParseStringErrorKind::InvalidUnicodeEscapeSequence(_)) => {
            "invalid unicode escape sequence".into()
        }
        ParseErrorKind::UnexpectedWord => "unexpected token (a bare word)".into(),
        ParseErrorKind::ExpectedStringObjectProperty => "expected a double-quoted property name".into(),
        other => other.to_string(),
    }
}

/// What kind of JSON value, for messages.
pub(crate) fn value_type(v: &Value<'_>) -> &'static str {
    match v {
        Value::StringLit(_) => "a string",
        Value::NumberLit(_) => "a number",
        Value::BooleanLit(_) => "a boolean",
        Value::Object(_) => "an object",
        Value::Array(_) => "an array",
        Value::NullKeyword(_) => "null",
    }
}

/// 1-based line and column (in characters) of byte offset `pos`; CRLF and lone CR end lines.
pub(crate) fn line_column(text: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(text.len());
    let (mut line, mut column) = (1, 1);
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        if i >= pos {
            break;
        }
        if c == '\n' || (c == '\r' && bytes.get(i + 1) != Some(&b'\n')) {
            line += 1;
            column = 1;
        } else if c != '\r' {
            column += 1;
        }
    }
    (line, column)
}

/// The string value of `obj.name` if it is a non-empty string.
pub(crate) fn non_empty_string<'a>(obj: &'a Object<'_>, name: &str) -> Option<&'a str> {
    obj.get_string(name)
        .map(|s| s.value.as_ref())
        .filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn err(text: &str) -> String {
        parse_object("doc", text).unwrap_err().to_string()
    }

    #[test]
    fn accepts_comments_and_trailing_commas() {
        let o = parse_object("doc", "// c\r\n{\"a\": [1,2,],\t/* b */ \"é\": \"ü\",}\r\n").unwrap();
        assert_eq!(o.properties.len(), 2);
    }

    #[test]
    fn errors_name_line_and_column() {
        assert!(
            err("{\n  \"a\": \"unclosed\n}").contains("line 2"),
            "{}",
            err("{\n  \"a\": \"unclosed\n}")
        );
        let e = err("{\r\n  \"a\": tru\r\n}");
        assert!(e.contains("line 2, column 8"), "{e}");
        assert!(err("[1, 2]").contains("must be a JSON object, found an array at line 1, column 1"));
        assert!(err("  // only a comment\n").contains("empty"));
        assert!(err("").contains("empty"));
        assert!(err("{'a': 1}").contains("line 1"));
    }
}
