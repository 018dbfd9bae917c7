//! The human-facing artifacts: `sequences.sql` and `restore.sh` (zstd + psql only).

use std::fmt::Write;

use crate::layout::{TableRecord, POST_DATA_SQL, PRE_DATA_SQL, SEQUENCES_SQL};
use crate::schema::{SchemaDump, SequenceInfo};
use crate::sql::quote_literal;

/// A POSIX shell single-quoted word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One `setval` per sequence, after the session settings of the DDL scripts.
pub(crate) fn sequences_sql(sequences: &[SequenceInfo], values: &[(i64, bool)]) -> String {
    let mut out = String::from(SchemaDump::session_setup_sql());
    for (s, (last, called)) in sequences.iter().zip(values) {
        let _ = writeln!(
            out,
            "SELECT pg_catalog.setval({}, {last}, {called});",
            quote_literal(&s.qualified_name)
        );
    }
    out
}

/// The `\copy` meta-command for a table, or `None` when a name holds a line break (psql
/// reads a meta-command to the end of the line).
fn backslash_copy(t: &TableRecord) -> Option<String> {
    let text = if t.columns.is_empty() {
        format!("\\copy {} FROM pstdin", t.qualified_name)
    } else {
        format!(
            "\\copy {} ({}) FROM pstdin",
            t.qualified_name,
            t.columns.join(", ")
        )
    };
    (!text.contains(['\n', '\r'])).then_some(text)
}

/// `restore.sh`: the exact commands that restore this store by hand into `$TARGET` (a libpq
/// connection string or URL of an empty database), run from the store's directory of the
/// backup.
pub(crate) fn restore_sh(store: &str, backup_id: &str, tables: &[TableRecord]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"#!/bin/sh
# Restores store {store} of backup {backup_id} with zstd and psql only.
# Usage: TARGET='postgres://user@host:5432/db' sh restore.sh   (run from this directory;
# the target database must exist and be empty; run it as the tables' owner or a superuser).
set -eu
: "${{TARGET:?set TARGET to the connection string of an empty database}}"
cd "$(dirname "$0")"
export PGCLIENTENCODING=UTF8
PSQL="psql -X -q -v ON_ERROR_STOP=1"
zstd -dc {pre} | $PSQL -d "$TARGET" >/dev/null
"#,
        pre = shell_quote(PRE_DATA_SQL)
    );
    for t in tables {
        for a in &t.artifacts {
            match backslash_copy(t) {
                Some(cmd) => {
                    let _ = writeln!(
                        out,
                        "zstd -dc {} | $PSQL -d \"$TARGET\" -c {}",
                        shell_quote(a),
                        shell_quote(&cmd)
                    );
                }
                None => {
                    // A line break in a name: send the COPY statement and the data in one stream.
                    let stmt = format!("COPY {} ({}) FROM STDIN;", t.qualified_name, t.columns.join(", "));
                    let _ = writeln!(
                        out,
                        "{{ printf '%s\\n' {}; zstd -dc {}; printf '\\\\.\\n'; }} | $PSQL -d \"$TARGET\"",
                        shell_quote(&stmt),
                        shell_quote(a)
                    );
                }
            }
        }
    }
    let _ = write!(
        out,
        r#"zstd -dc {seq} | $PSQL -d "$TARGET" >/dev/null
zstd -dc {post} | $PSQL -d "$TARGET" >/dev/null
$PSQL -d "$TARGET" -c ANALYZE
"#,
        seq = shell_quote(SEQUENCES_SQL),
        post = shell_quote(POST_DATA_SQL)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
