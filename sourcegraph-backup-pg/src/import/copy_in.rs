//! Loads one table: `TRUNCATE` and `COPY ... FROM STDIN WITH (FREEZE)` in one transaction,
//! streaming every part of the table from the backup (never the whole table in memory).

use futures::SinkExt;
use sourcegraph_backup_core::ImportContext;
use tokio_postgres::Client;

use crate::error::PgError;
use crate::layout::TableRecord;

/// Rows loaded and stored bytes read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Loaded {
    pub rows: u64,
    pub stored_bytes: u64,
}

fn copy_from(t: &TableRecord) -> String {
    if t.columns.is_empty() {
        format!("COPY {} FROM STDIN WITH (FREEZE)", t.qualified_name)
    } else {
        format!(
            "COPY {} ({}) FROM STDIN WITH (FREEZE)",
            t.qualified_name,
            t.columns.join(", ")
        )
    }
}

/// Loads all parts of `t` sequentially in one transaction that truncates it first, so
/// `FREEZE` applies to every row (no vacuum storm on the target afterwards).
pub(crate) async fn load_table(
    client: &Client,
    ctx: &ImportContext,
    t: &TableRecord,
) -> Result<Loaded, PgError> {
    let restore_err = |what: &str| {
        let what = format!("{what} of table {}", t.qualified_name);
        move |source| PgError::Restore { what, source }
    };
    let copy_err = |source| PgError::Copy {
        direction: "COPY FROM",
        table: t.qualified_name.clone(),
        source,
    };
    client
        .batch_execute(&format!("BEGIN; TRUNCATE ONLY {}", t.qualified_name))
        .await
        .map_err(restore_err("truncate"))?;
    let statement = copy_from(t);
    let mut loaded = Loaded::default();
    for name in &t.artifacts {
        let artifact_err = |source| PgError::Artifact {
            artifact: name.clone(),
            source: Box::new(source),
        };
        let reader = ctx.open(name).map_err(artifact_err)?;
        loaded.stored_bytes += reader.record().size;
        let mut chunks = reader.into_chunks();
        let sink = client
            .copy_in::<_, bytes::Bytes>(statement.as_str())
            .await
            .map_err(copy_err)?;
        let mut sink = std::pin::pin!(sink);
        while let Some(chunk) = chunks.recv().await {
            // A checksum mismatch arrives as the last item: the transaction is then rolled
            // back by dropping the sink unfinished (the server sees CopyFail).
            let chunk = chunk.map_err(artifact_err)?;
            ctx.progress().bytes(ctx.store(), chunk.len() as u64);
            sink.send(chunk).await.map_err(copy_err)?;
        }
        let rows = sink.as_mut().finish().await.map_err(copy_err)?;
        ctx.progress().rows(ctx.store(), &t.qualified_name, rows);
        loaded.rows += rows;
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(restore_err("commit"))?;
    Ok(loaded)
}
