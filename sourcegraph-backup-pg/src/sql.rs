//! SQL text this crate writes itself, and the errors of the queries it runs: the one place
//! identifiers and literals are quoted, and a query failure is given its context.
//!
//! Names read from the catalogs are quoted by the server (`pg_catalog.format('%I.%I', ...)`,
//! `pg_catalog.quote_ident`) and used as they come; these functions quote what the crate
//! holds as plain text (role names, schema and extension names, settings, snapshot ids).

use tokio_postgres::row::RowIndex;
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;

use crate::error::PgError;

/// A quoted identifier: `"name"`, with `"` doubled. Always quoted, which is correct for every
/// name (a keyword, upper case, or a name that needs no quotes).
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A string literal: `'text'`, with `'` doubled (the sessions this crate opens run with
/// `standard_conforming_strings = on`, the default since PostgreSQL 9.1, so a backslash is
/// an ordinary character).
pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Turns a driver error into [`PgError::Query`], saying what was being done: for
/// `.map_err(query_err("reading table sizes"))`. The context is converted only on failure.
pub(crate) fn query_err<C: Into<String>>(context: C) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    move |source| PgError::Query {
        context: context.into(),
        source,
    }
}

/// Reads column `idx` of `row`, naming `context` when the value does not convert.
pub(crate) fn get<'a, T, I>(row: &'a Row, idx: I, context: &str) -> Result<T, PgError>
where
    T: FromSql<'a>,
    I: RowIndex + std::fmt::Display,
{
    row.try_get(idx).map_err(query_err(context))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("public"), "\"public\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("a'b"), "'a''b'");
        assert_eq!(quote_literal(r"C:\dir"), r"'C:\dir'");
    }
}
