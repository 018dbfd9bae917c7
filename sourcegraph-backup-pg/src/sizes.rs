//! Table sizes: the one query the probe, the schema extractor and the export read them with.

use tokio_postgres::Client;

use crate::error::PgError;
use crate::sql::{get, query_err};

/// The on-disk sizes of one table, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TableSizes {
    /// `pg_relation_size`: the main fork (the heap) only, which ctid ranges split.
    pub main_fork: i64,
    /// `pg_table_size`: the heap with its TOAST table, free space and visibility maps; no
    /// indexes.
    pub table: i64,
    /// `pg_total_relation_size`: [`table`](Self::table) plus every index.
    pub total: i64,
}

/// The sizes of the tables `qualified_names` (`"schema"."name"`, quoted as
/// `pg_catalog.format('%I.%I', ...)` quotes them), in their order, in one round trip: `None`
/// for a name that no longer names a table (dropped since it was listed). Like every caller
/// of the size functions, it takes an `ACCESS SHARE` lock on each table it measures.
pub(crate) async fn table_sizes(
    client: &Client,
    qualified_names: &[&str],
) -> Result<Vec<Option<TableSizes>>, PgError> {
    const CTX: &str = "reading table sizes";
    let rows = client
        .query(
            "SELECT pg_catalog.pg_relation_size(t.r), pg_catalog.pg_table_size(t.r), \
                    pg_catalog.pg_total_relation_size(t.r) \
             FROM (SELECT pg_catalog.to_regclass(u.n) AS r, u.i \
                   FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i)) t \
             ORDER BY t.i",
            &[&qualified_names],
        )
        .await
        .map_err(query_err(CTX))?;
    rows.iter()
        .map(|r| {
            let main_fork: Option<i64> = get(r, 0, CTX)?;
            let table: Option<i64> = get(r, 1, CTX)?;
            let total: Option<i64> = get(r, 2, CTX)?;
            // The functions return NULL for a relation that is gone: all three, or (dropped
            // between two of the calls) some.
            Ok(match (main_fork, table, total) {
                (Some(main_fork), Some(table), Some(total)) => Some(TableSizes {
                    main_fork,
                    table,
                    total,
                }),
                _ => None,
            })
        })
        .collect()
}
