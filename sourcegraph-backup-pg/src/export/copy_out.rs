//! Streams one work item (a table, or one ctid range of it) into one artifact.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sourcegraph_backup_core::{ArtifactOptions, ArtifactWriter, ExportContext};
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

/// One work item's artifact while it is being written, kept across attempts: when a
/// worker's connection is lost mid-COPY, the part is redone from its start on a new
/// connection in the same snapshot, and the bytes the artifact already holds are compared
/// with the redo's first bytes instead of being written again (the core's artifact writer
/// cannot take back what it was given, and an artifact name can be written once per
/// backup). Only the redo's bytes past that prefix go to the artifact, so the finished
/// artifact holds exactly one full COPY of the part; if the redo's prefix differs, the part
/// fails.
pub(crate) struct Part {
    writer: Option<ArtifactWriter>,
    buf: BytesMut,
    copied: Copied,
    batch_rows: u64,
    /// Every byte taken from the server so far (written or still in `buf`).
    check: StreamCheck,
}

impl Part {
    /// A part nothing has been copied into yet.
    pub(crate) fn new() -> Self {
        Part {
            writer: None,
            buf: BytesMut::new(),
            copied: Copied::default(),
            batch_rows: 0,
            check: StreamCheck::default(),
        }
    }

    /// COPY bytes taken from the server so far.
    pub(crate) fn consumed(&self) -> u64 {
        self.check.len()
    }
}

/// Runs the item's COPY on `client` and streams it into its artifact, skipping (and
/// checking) what an earlier attempt already took. Leaves the artifact open: call
/// [`finish`] once an attempt succeeds.
pub(crate) async fn copy_attempt(
    client: &Client,
    ctx: &ExportContext,
    options: &ArtifactOptions,
    item: &WorkItem,
    part: &mut Part,
) -> Result<(), PgError> {
    let copy_err = |source| PgError::Copy {
        direction: "COPY TO",
        table: item.label.clone(),
        source,
    };
    let stream = client.copy_out(item.statement.as_str()).await.map_err(copy_err)?;
    let mut stream = std::pin::pin!(stream);
    let writer = match part.writer.as_mut() {
        Some(w) => w,
        None => part.writer.insert(
            ctx.artifact(&item.artifact, options.clone())
                .await
                .map_err(|e| artifact_err(item, e))?,
        ),
    };
    if part.buf.capacity() < BATCH {
        part.buf.reserve(BATCH + 64 * 1024);
    }
    // An earlier attempt's bytes: the redo must reproduce them before it adds anything.
    let skip = part.check.len();
    let expected = part.check.digest();
    let mut redo = StreamCheck::default();
    let mut verified = skip == 0;
    while let Some(row) = stream.next().await {
        let mut row: Bytes = row.map_err(copy_err)?;
        if !verified {
            let need = usize::try_from(skip - redo.len()).unwrap_or(usize::MAX);
            let head = row.split_to(need.min(row.len()));
            redo.update(&head);
            if redo.len() < skip {
                continue;
            }
            if redo.digest() != expected {
                return Err(diverged(item, skip));
            }
            verified = true;
            if row.is_empty() {
                continue;
            }
        }
        part.check.update(&row);
        part.buf.extend_from_slice(&row);
        part.batch_rows += 1;
        if part.buf.len() >= BATCH {
            let chunk = std::mem::replace(&mut part.buf, BytesMut::with_capacity(BATCH + 64 * 1024)).freeze();
            flush(
                &mut part.copied,
                &mut part.batch_rows,
                chunk.len() as u64,
                ctx,
                &item.qualified_name,
            );
            writer.write(chunk).await.map_err(|e| artifact_err(item, e))?;
        }
    }
    if !verified {
        return Err(diverged(item, skip));
    }
    Ok(())
}

/// Writes what is left of a part and finishes its artifact.
pub(crate) async fn finish(
    ctx: &ExportContext,
    options: &ArtifactOptions,
    item: &WorkItem,
    mut part: Part,
) -> Result<Copied, PgError> {
    let mut writer = match part.writer.take() {
        Some(w) => w,
        None => ctx
            .artifact(&item.artifact, options.clone())
            .await
            .map_err(|e| artifact_err(item, e))?,
    };
    let rest = std::mem::take(&mut part.buf).freeze();
    flush(
        &mut part.copied,
        &mut part.batch_rows,
        rest.len() as u64,
        ctx,
        &item.qualified_name,
    );
    writer.write(rest).await.map_err(|e| artifact_err(item, e))?;
    writer.finish().await.map_err(|e| artifact_err(item, e))?;
    Ok(part.copied)
}

fn artifact_err(item: &WorkItem, source: sourcegraph_backup_core::CoreError) -> PgError {
    PgError::Artifact {
        artifact: item.artifact.clone(),
        source: Box::new(source),
    }
}

fn diverged(item: &WorkItem, skip: u64) -> PgError {
    PgError::Worker {
        what: "export",
        reason: format!(
            "the redone COPY of {} did not reproduce the {skip} bytes the first attempt had \
             already written to {}",
            item.label, item.artifact
        ),
    }
}

fn flush(copied: &mut Copied, batch_rows: &mut u64, bytes: u64, ctx: &ExportContext, table: &str) {
    copied.rows += *batch_rows;
    copied.bytes += bytes;
    ctx.progress().rows(ctx.store(), table, *batch_rows);
    ctx.progress().bytes(ctx.store(), bytes);
    *batch_rows = 0;
}

/// A fast checksum of a byte stream that does not depend on how the stream is cut into
/// messages: 64-bit words folded with a multiply-rotate (FxHash's step), then the length.
/// It catches a redo that returns other bytes (another row order, other rows); it is not
/// meant to resist a forger.
#[derive(Debug, Clone, Default)]
struct StreamCheck {
    state: u64,
    tail: [u8; 8],
    tail_len: usize,
    len: u64,
}

const FOLD: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl StreamCheck {
    fn fold(state: u64, word: u64) -> u64 {
        (state.rotate_left(5) ^ word).wrapping_mul(FOLD)
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.tail_len > 0 {
            let take = (8 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < 8 {
                return;
            }
            self.state = Self::fold(self.state, u64::from_le_bytes(self.tail));
            self.tail_len = 0;
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(w);
            self.state = Self::fold(self.state, u64::from_le_bytes(bytes));
        }
        let rest = words.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn digest(&self) -> u64 {
        let mut last = [0u8; 8];
        last[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        let state = Self::fold(self.state, u64::from_le_bytes(last));
        Self::fold(state, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(pieces: &[&[u8]]) -> (u64, u64) {
        let mut c = StreamCheck::default();
        for p in pieces {
            c.update(p);
        }
        (c.digest(), c.len())
    }

    #[test]
    fn the_check_does_not_depend_on_message_boundaries() {
        let data: Vec<u8> = (0..1000u32)
            .flat_map(|i| format!("{i}\trow {i}\n").into_bytes())
            .collect();
        let whole = digest_of(&[&data]);
        for cut in [0, 1, 7, 8, 9, 15, 16, 17, 500, data.len()] {
            let (a, b) = data.split_at(cut);
            assert_eq!(digest_of(&[a, b]), whole, "cut at {cut}");
        }
        let bytewise: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(digest_of(&bytewise), whole);
        let threes: Vec<&[u8]> = data.chunks(3).collect();
        assert_eq!(digest_of(&threes), whole);
    }

    #[test]
    fn the_check_sees_reordered_and_changed_rows() {
        let (a, b) = (b"1\talice\n".as_slice(), b"2\tbob\n".as_slice());
        assert_ne!(digest_of(&[a, b]), digest_of(&[b, a]));
        assert_ne!(digest_of(&[b"1\talice\n"]), digest_of(&[b"1\talicf\n"]));
        assert_ne!(digest_of(&[b"abc"]), digest_of(&[b"abc\0"]));
        assert_eq!(digest_of(&[]), (StreamCheck::default().digest(), 0));
    }
}
