//! Artifact names and shell-safe quoting for the Postgres store's artifacts.
//!
//! Table names are never trusted as paths: every byte outside `[A-Za-z0-9_-]` is written as
//! `+HH` (so `.` separates schema, table and part unambiguously and no name can escape the
//! `data/` directory). `%` and `~` are avoided because object stores re-encode them.

use std::fmt::Write;

/// Longest encoded schema or table component kept in a file name (file systems cap a name at
/// 255 bytes); longer ones are cut and made unique with the table's index.
const MAX_COMPONENT: usize = 100;

/// Encodes one name component for an artifact path.
pub(crate) fn encode_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
    out
}

/// Cuts an encoded component at a char boundary that does not split a `+HH` escape.
fn cut(encoded: &str) -> &str {
    let mut end = MAX_COMPONENT.min(encoded.len());
    while end > 0 && encoded.as_bytes().get(end.saturating_sub(1)) == Some(&b'+') {
        end -= 1;
    }
    if end >= 2 && encoded.as_bytes().get(end - 2) == Some(&b'+') {
        end -= 2;
    }
    &encoded[..end]
}

/// `data/<schema>.<table>.<part>.copy` (+ the compression suffix), unique per table index.
pub(crate) fn data_artifact(schema: &str, table: &str, index: usize, part: usize, suffix: &str) -> String {
    let (s, t) = (encode_component(schema), encode_component(table));
    if s.len() > MAX_COMPONENT || t.len() > MAX_COMPONENT {
        format!("data/{}.{}.t{index}.{part:04}.copy{suffix}", cut(&s), cut(&t))
    } else {
        format!("data/{s}.{t}.{part:04}.copy{suffix}")
    }
}

/// A POSIX shell single-quoted word.
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_distinct() {
        assert_eq!(
            data_artifact("public", "repo", 0, 0, ".zst"),
            "data/public.repo.0000.copy.zst"
        );
        let odd = data_artifact("we\"ird sch", "../x/y", 1, 2, "");
        assert_eq!(odd, "data/we+22ird+20sch.+2E+2E+2Fx+2Fy.0002.copy");
        assert!(!odd[5..].contains('/'));
        assert_ne!(
            data_artifact("a.b", "c", 0, 0, ""),
            data_artifact("a", "b.c", 1, 0, "")
        );
        let long = "é".repeat(60);
        let name = data_artifact("public", &long, 7, 0, "");
        assert!(name.len() < 200, "{name}");
        assert!(name.contains(".t7."));
        assert!(!name.contains("+.") && !name.contains("+C."));
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
