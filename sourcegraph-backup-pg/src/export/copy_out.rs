//! Streams one work item (a table, or one ctid range of it) into one artifact.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sourcegraph_backup_core::{ArtifactOptions, ExportContext};
use tokio_postgres::Client;

use crate::error::PgError;

/// tokio-postgres yields COPY data one row per message; rows are gathered into buffers of
/// this size before they go to the artifact writer (compression and hashing per row would
/// dominate otherwise).
const BATCH: usize = 1024 * 1024;

/// One unit of export work.
#[derive(Debug, Clone)]
pub(crate) struct WorkItem {
    /// Index into the export's table list.
    pub table: usize,
    /// The table's qualified name, for messages and progress.
    pub qualified_name: String,
    /// The artifact to write.
    pub artifact: String,
    /// The `COPY ... TO STDOUT` statement.
    pub statement: String,
    /// Estimated bytes, to schedule the largest first.
    pub estimate: u64,
    /// Label for errors: the table, with the page range when split.
    pub label: String,
}

/// The `COPY` statement for a table (or a ctid page range of it), listing the columns so
/// generated columns are left out.
pub(crate) fn copy_statement(
    qualified: &str,
    columns: &[String],
    pages: Option<(u64, Option<u64>)>,
) -> String {
    let list = columns.join(", ");
    match pages {
        None if columns.is_empty() => format!("COPY {qualified} TO STDOUT"),
        None => format!("COPY {qualified} ({list}) TO STDOUT"),
        Some((from, to)) => {
            let mut filter = format!("ctid >= '({from},0)'::tid");
            if let Some(to) = to {
                filter += &format!(" AND ctid < '({to},0)'::tid");
            }
            format!("COPY (SELECT {list} FROM ONLY {qualified} WHERE {filter}) TO STDOUT")
        }
    }
}

/// Rows and uncompressed bytes copied.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Copied {
    pub rows: u64,
    pub bytes: u64,
}

/// Runs the item's COPY on `client` and streams it into its artifact.
pub(crate) async fn copy_item(
    client: &Client,
    ctx: &ExportContext,
    options: &ArtifactOptions,
    item: &WorkItem,
) -> Result<Copied, PgError> {
    let copy_err = |source| PgError::Copy {
        direction: "COPY TO",
        table: item.label.clone(),
        source,
    };
    let artifact_err = |source| PgError::Artifact {
        artifact: item.artifact.clone(),
        source: Box::new(source),
    };
    let stream = client.copy_out(item.statement.as_str()).await.map_err(copy_err)?;
    let mut stream = std::pin::pin!(stream);
    let mut writer = ctx
        .artifact(&item.artifact, options.clone())
        .await
        .map_err(artifact_err)?;
    let mut buf = BytesMut::with_capacity(BATCH + 64 * 1024);
    let mut copied = Copied::default();
    let mut batch_rows = 0u64;
    while let Some(row) = stream.next().await {
        let row: Bytes = row.map_err(copy_err)?;
        buf.extend_from_slice(&row);
        batch_rows += 1;
        if buf.len() >= BATCH {
            let chunk = std::mem::replace(&mut buf, BytesMut::with_capacity(BATCH + 64 * 1024)).freeze();
            flush(
                &mut copied,
                &mut batch_rows,
                chunk.len() as u64,
                ctx,
                &item.qualified_name,
            );
            writer.write(chunk).await.map_err(artifact_err)?;
        }
    }
    let rest = buf.freeze();
    flush(
        &mut copied,
        &mut batch_rows,
        rest.len() as u64,
        ctx,
        &item.qualified_name,
    );
    writer.write(rest).await.map_err(artifact_err)?;
    writer.finish().await.map_err(artifact_err)?;
    Ok(copied)
}

fn flush(copied: &mut Copied, batch_rows: &mut u64, bytes: u64, ctx: &ExportContext, table: &str) {
    copied.rows += *batch_rows;
    copied.bytes += bytes;
    ctx.progress().rows(ctx.store(), table, *batch_rows);
    ctx.progress().bytes(ctx.store(), bytes);
    *batch_rows = 0;
}
