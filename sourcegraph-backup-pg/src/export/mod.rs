//! Export: one snapshot, many workers, one artifact per table (or per ctid range of a big
//! table), plus the schema, sequence values and a restore script.
//!
//! The leader connection opens a `REPEATABLE READ READ ONLY` transaction, exports its
//! snapshot, reads the schema and the sequence values in it and takes `ACCESS SHARE` locks
//! on every dumped table (with a lock timeout). Workers adopt the snapshot with
//! `SET TRANSACTION SNAPSHOT` and stream `COPY ... TO STDOUT`, largest work items first.

mod copy_out;
pub mod details;
pub(crate) mod names;
mod scripts;
mod snapshot;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sourcegraph_backup_core::{ArtifactOptions, Compression, ExportContext, ExportReport, SourceInfo};

use crate::connection::PgConnectionConfig;
use crate::error::PgError;
use crate::probe::{probe, ProbeOptions};
use crate::schema::{extract_schema, ExtractOptions, RenderOptions, TableInfo};
use copy_out::{copy_statement, Copied, WorkItem};
use details::{
    ExcludedTable, PgStoreDetails, TableRecord, DETAILS_FORMAT, POST_DATA_SQL, PRE_DATA_SQL, RESTORE_SH,
    SCHEMA_JSON, SEQUENCES_SQL,
};

/// Data of tables matching `pattern` is left out (their schema is kept), for `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDataExclusion {
    /// `name` or `schema.name`; `*` matches any run of characters (e.g. `event_logs*`).
    pub pattern: String,
    /// Why, recorded in the manifest (e.g. "usage statistics").
    pub reason: String,
}

impl TableDataExclusion {
    /// An exclusion rule.
    pub fn new(pattern: impl Into<String>, reason: impl Into<String>) -> Self {
        TableDataExclusion {
            pattern: pattern.into(),
            reason: reason.into(),
        }
    }

    /// The rules that leave out a catalog class's table data, by catalog row id
    /// (`usage-statistics`: Sourcegraph's event log tables). The reason quotes the
    /// catalog. `None` for a row this crate has no table list for.
    pub fn for_catalog_row(catalog_id: &str) -> Option<Vec<TableDataExclusion>> {
        let entry = sourcegraph_backup_core::catalog::catalog_entry(catalog_id)?;
        let patterns: &[&str] = match catalog_id {
            "usage-statistics" => &["event_logs", "event_logs_*", "security_event_logs"],
            _ => return None,
        };
        let reason = format!("catalog class {:?} ({}): {}", entry.id, entry.item, entry.note);
        Some(
            patterns
                .iter()
                .map(|p| TableDataExclusion::new(*p, reason.clone()))
                .collect(),
        )
    }

    /// Whether the rule matches a table.
    pub fn matches(&self, schema: &str, name: &str) -> bool {
        if self.pattern.contains('.') {
            glob(&self.pattern, &format!("{schema}.{name}"))
        } else {
            glob(&self.pattern, name)
        }
    }
}

/// `*`-only glob matching.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// How a Postgres export runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgExportOptions {
    /// Worker connections copying data; 0 means the number of cores.
    pub jobs: usize,
    /// How long the leader waits for each table's `ACCESS SHARE` lock.
    pub lock_timeout: Duration,
    /// On servers 14+, tables whose main fork is larger than this are split into ctid page
    /// ranges copied in parallel.
    pub split_threshold_bytes: u64,
    /// Tables whose data is left out.
    pub exclude_table_data: Vec<TableDataExclusion>,
    /// Back up a database that is not a Sourcegraph database.
    pub allow_generic: bool,
    /// Which schemas to dump.
    pub extract: ExtractOptions,
    /// Compression of the artifacts (zstd level 1 by default).
    pub compression: Compression,
}

impl Default for PgExportOptions {
    fn default() -> Self {
        PgExportOptions {
            jobs: 0,
            lock_timeout: Duration::from_secs(10),
            split_threshold_bytes: 256 * 1024 * 1024,
            exclude_table_data: Vec::new(),
            allow_generic: false,
            extract: ExtractOptions::default(),
            compression: Compression::DEFAULT_ZSTD,
        }
    }
}

impl PgExportOptions {
    /// The number of workers: `jobs`, or the number of cores.
    pub fn effective_jobs(&self) -> usize {
        if self.jobs > 0 {
            self.jobs
        } else {
            std::thread::available_parallelism().map_or(2, usize::from)
        }
    }
}

/// Most parts one table is split into.
const MAX_PARTS: u64 = 64;
/// Servers from this version scan ctid ranges without reading the whole table.
const TID_RANGE_SCAN_VERSION: i32 = 140_000;

/// Runs an export of the database at `config` into `ctx`.
pub(crate) async fn export(
    config: &PgConnectionConfig,
    opts: &PgExportOptions,
    ctx: ExportContext,
) -> Result<ExportReport, PgError> {
    match export_inner(config, opts, ctx).await {
        Ok(report) => Ok(report),
        Err(e) => Err(snapshot::name_lock_conflict(config, e).await),
    }
}

async fn export_inner(
    config: &PgConnectionConfig,
    opts: &PgExportOptions,
    ctx: ExportContext,
) -> Result<ExportReport, PgError> {
    let leader = config.connect().await?;
    snapshot::session_setup(&leader, opts.lock_timeout).await?;
    let report = probe(
        &leader,
        ProbeOptions {
            allow_generic: opts.allow_generic,
        },
    )
    .await?;
    let snapshot_id = snapshot::begin_leader(&leader).await?;
    let dump = extract_schema(&leader, &opts.extract).await?;
    snapshot::lock_tables(&leader, &dump.tables).await?;
    let seq_values = snapshot::sequence_values(&leader, &dump.sequences).await?;

    let suffix = opts.compression.suffix();
    let artifact_opts = |content_type: &str| ArtifactOptions {
        content_type: content_type.into(),
        compression: opts.compression,
    };
    let jobs = opts.effective_jobs();

    // Tables that hold data, the excluded ones, and the work items.
    let mut excluded = Vec::new();
    let data_tables: Vec<&TableInfo> = dump
        .tables
        .iter()
        .filter(|t| !t.is_partitioned)
        .filter(|t| {
            match opts
                .exclude_table_data
                .iter()
                .find(|r| r.matches(&t.schema, &t.name))
            {
                Some(rule) => {
                    excluded.push(ExcludedTable {
                        qualified_name: t.qualified_name.clone(),
                        reason: rule.reason.clone(),
                    });
                    false
                }
                None => true,
            }
        })
        .collect();
    let owned: Vec<TableInfo> = data_tables.iter().map(|t| (*t).clone()).collect();
    let (sizes, block_size) = snapshot::relation_sizes(&leader, &owned).await?;
    let split_ok = report.server_version_num >= TID_RANGE_SCAN_VERSION;
    let mut records = Vec::with_capacity(owned.len());
    let mut items = Vec::new();
    for (i, (t, size)) in owned.iter().zip(&sizes).enumerate() {
        let size = u64::try_from(*size).unwrap_or(0);
        let block = u64::try_from(block_size).unwrap_or(8192).max(1);
        let parts = if split_ok && size > opts.split_threshold_bytes && opts.split_threshold_bytes > 0 {
            size.div_ceil(opts.split_threshold_bytes)
                .max(jobs as u64)
                .min(MAX_PARTS)
        } else {
            1
        };
        let pages = size.div_ceil(block);
        let per_part = pages.div_ceil(parts).max(1);
        let mut artifacts = Vec::new();
        for p in 0..parts {
            let artifact = names::data_artifact(&t.schema, &t.name, i, p as usize, suffix);
            let (statement, label) = if parts == 1 {
                (
                    copy_statement(&t.qualified_name, &t.quoted_columns_for_copy, None),
                    t.qualified_name.clone(),
                )
            } else {
                let from = p * per_part;
                let to = (p + 1 < parts).then_some((p + 1) * per_part);
                let label = format!(
                    "{} (pages {from}..{})",
                    t.qualified_name,
                    to.map_or_else(|| "end".to_owned(), |v| v.to_string())
                );
                (
                    copy_statement(&t.qualified_name, &t.quoted_columns_for_copy, Some((from, to))),
                    label,
                )
            };
            items.push(WorkItem {
                table: i,
                qualified_name: t.qualified_name.clone(),
                artifact: artifact.clone(),
                statement,
                estimate: size.max(u64::try_from(t.approx_bytes).unwrap_or(0)) / parts,
                label,
            });
            artifacts.push(artifact);
        }
        records.push(TableRecord {
            identity: t.identity.clone(),
            schema: t.schema.clone(),
            name: t.name.clone(),
            qualified_name: t.qualified_name.clone(),
            columns: t.quoted_columns_for_copy.clone(),
            artifacts,
            rows: 0,
            bytes: 0,
        });
    }
    items.sort_by_key(|i| std::cmp::Reverse(i.estimate));

    let copied = run_workers(
        config,
        (&snapshot_id, opts.lock_timeout),
        &ctx,
        artifact_opts("text/tab-separated-values"),
        items,
        jobs,
    )
    .await?;
    for (table, c) in copied {
        if let Some(r) = records.get_mut(table) {
            r.rows += c.rows;
            r.bytes += c.bytes;
        }
    }

    // Schema and scripts.
    let put = |name: &'static str, content_type: &str, data: Vec<u8>| {
        let ctx = ctx.clone();
        let options = if name == RESTORE_SH {
            ArtifactOptions::plain(content_type)
        } else {
            artifact_opts(content_type)
        };
        async move {
            ctx.put_artifact(name, options, Bytes::from(data))
                .await
                .map_err(|source| PgError::Artifact {
                    artifact: name.into(),
                    source: Box::new(source),
                })
        }
    };
    let json = serde_json::to_vec(&dump).map_err(|e| PgError::MalformedBackup {
        store: ctx.store().into(),
        reason: format!("cannot serialize the schema: {e}"),
    })?;
    let render = RenderOptions::default();
    put(SCHEMA_JSON, "application/json", json).await?;
    put(
        PRE_DATA_SQL,
        "application/sql",
        dump.pre_data_sql(&render).into_bytes(),
    )
    .await?;
    put(
        POST_DATA_SQL,
        "application/sql",
        dump.post_data_sql(&render).into_bytes(),
    )
    .await?;
    let seq_sql = scripts::sequences_sql(&dump.sequences, &seq_values);
    put(SEQUENCES_SQL, "application/sql", seq_sql.into_bytes()).await?;
    let script = scripts::restore_sh(ctx.store(), ctx.backup_id(), &records);
    put(RESTORE_SH, "text/x-shellscript", script.into_bytes()).await?;

    leader
        .batch_execute("COMMIT")
        .await
        .map_err(|source| PgError::Query {
            context: "ending the snapshot transaction".into(),
            source,
        })?;

    let mut warnings = report.warnings();
    for e in &excluded {
        warnings.push(format!(
            "data of table {} left out: {}",
            e.qualified_name, e.reason
        ));
    }
    let source = SourceInfo {
        sourcegraph_version: report.product_version.as_ref().and_then(|v| v.version.clone()),
        schema_versions: report
            .latest_migration()
            .map(|m| [(ctx.store().to_owned(), m.to_string())].into_iter().collect())
            .unwrap_or_default(),
    };
    let details = PgStoreDetails {
        format: DETAILS_FORMAT,
        probe: report,
        tables: records,
        excluded,
        sequences: dump.sequences.len(),
        options: serde_json::to_value(opts).unwrap_or_default(),
    };
    Ok(ExportReport {
        details: serde_json::to_value(&details).unwrap_or_default(),
        warnings,
        source,
    })
}

/// Runs the work items on `jobs` worker connections in the leader's snapshot; returns the
/// rows/bytes per table index. The first failure stops every worker.
async fn run_workers(
    config: &PgConnectionConfig,
    (snapshot_id, lock_timeout): (&str, Duration),
    ctx: &ExportContext,
    options: ArtifactOptions,
    items: Vec<WorkItem>,
    jobs: usize,
) -> Result<Vec<(usize, Copied)>, PgError> {
    let workers = jobs.min(items.len()).max(1);
    let queue = Arc::new(Mutex::new(VecDeque::from(items)));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (config, snapshot_id, ctx, options, queue) = (
            config.clone(),
            snapshot_id.to_owned(),
            ctx.clone(),
            options.clone(),
            queue.clone(),
        );
        set.spawn(async move {
            let client = snapshot::worker(&config, &snapshot_id, lock_timeout).await?;
            let mut done = Vec::new();
            loop {
                let next = queue
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .pop_front();
                let Some(item) = next else { break };
                let c = copy_out::copy_item(&client, &ctx, &options, &item).await?;
                done.push((item.table, c));
            }
            Ok::<_, PgError>(done)
        });
    }
    let mut all = Vec::new();
    while let Some(joined) = set.join_next().await {
        let result = joined.map_err(|e| PgError::Worker {
            what: "export",
            reason: e.to_string(),
        });
        match result.and_then(|r| r) {
            Ok(done) => all.extend(done),
            Err(e) => {
                set.abort_all();
                return Err(e);
            }
        }
    }
    Ok(all)
}
