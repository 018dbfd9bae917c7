//! Everything the command prints goes through here: the last safety net against secrets.
//!
//! The libraries keep credentials out of locations and errors; these functions pass every
//! line and every JSON string once more through
//! [`redact_text`](sourcegraph_backup::core::redact::redact_text), so that a secret a library
//! missed (a URL's userinfo or query string, `password=...` in a driver's message) is masked
//! before it reaches a terminal or a log.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;
use sourcegraph_backup::core::redact::redact_text;

/// `text` as it may be shown.
pub fn redact(text: &str) -> String {
    redact_text(text)
}

/// Prints `text` (one or more lines) on stdout, redacted; a newline is added.
pub fn line(text: impl AsRef<str>) {
    println!("{}", redact(text.as_ref()));
}

/// Prints `text` (one or more lines) on stderr, redacted; a newline is added.
pub fn err(text: impl AsRef<str>) {
    eprintln!("{}", redact(text.as_ref()));
}

/// Every string of a JSON value (keys too) with secrets masked. Strings are redacted one by
/// one, not the serialised text, so that masking can never break the JSON.
pub fn redact_value(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(redact(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_value).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (redact(&k), redact_value(v)))
                .collect(),
        ),
        other => other,
    }
}

/// One line of JSON, every string redacted.
pub fn json_line<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    serde_json::to_value(value).and_then(|v| serde_json::to_string(&redact_value(v)))
}

/// Prints a value as one line of JSON on stdout, every string redacted.
pub fn json<T: Serialize>(value: &T) {
    match json_line(value) {
        Ok(s) => println!("{s}"),
        Err(e) => err(format!("error: cannot serialise the result: {e}")),
    }
}

/// A `tracing` writer: each log record is written to stderr redacted.
#[derive(Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = redact(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
