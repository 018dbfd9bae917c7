//! Comparing two databases: schema, rows and sequences, the way the project's own restore
//! oracle does, with nothing but SQL (no `pg_dump`).
//!
//! [`compare`] reads each side in one `REPEATABLE READ READ ONLY` transaction (workers adopt
//! its exported snapshot), so every figure of a side describes one instant:
//!
//! - **schema**: both sides are read with the crate's own extractor
//!   ([`extract_schema`]), every object's DDL rendered with the same [`RenderOptions`] (owners
//!   and grants only when asked), and compared per object identity (`table public.repo`,
//!   `index public.repo_name_idx`, ...): objects only in the source are *missing*, objects only
//!   in the target are *extra*, objects whose DDL differs are *different* (both texts are in
//!   the report);
//! - **data**: every table's own rows (`FROM ONLY`: a partition or an inheritance child is
//!   compared on its own, a partitioned table holds no rows and is not listed) are counted and
//!   hashed in SQL;
//! - **sequences**: `last_value` and `is_called` of every sequence, identity sequences
//!   included.
//!
//! # The content hash and its cost
//!
//! A table's hash does not depend on the order of its rows: each row's text form
//! (`md5((t.*)::text)`: `t.*` is the whole row even when the table has a column named `t`)
//! is split in two 64-bit halves, and the halves are summed over the table
//! as `numeric` (no overflow); the hash is `md5(count:sum1:sum2)`. Duplicate rows count (a sum,
//! not an exclusive or). It costs one sequential scan of every table per side, one row-to-text
//! conversion and one md5 per row, and constant memory on the server: no sort and no
//! aggregate of the table's text, unlike the oracle's `string_agg(... ORDER BY ...)`. Expect
//! about the time of a `COPY ... TO` of the database without the transfer, spread over
//! [`CompareOptions::jobs`] connections per side; both sides are read at the same time.
//! The text forms are made independent of the session's settings (`DateStyle`,
//! `IntervalStyle`, `TimeZone`, `extra_float_digits`, `bytea_output`, `lc_monetary` are set
//! the same on both sides), so equal rows hash alike on any two servers of PostgreSQL 12 or
//! later with the same encoding.
//!
//! # Across major versions
//!
//! Each server deparses view, rule, policy, trigger and routine bodies (and some defaults) with
//! its own deparser, so comparing the schemas of, say, a PostgreSQL 12 source and a 16 target
//! may report *different* objects whose DDL only reads differently. The report says so in its
//! [`notes`](CompareReport::notes) when the majors differ; leave the schema out
//! ([`CompareOptions::schema`]) to compare only data and sequences, or compare the target with
//! a reference restored on the same server.
//!
//! # Privileges and limits
//!
//! The connecting roles need what a backup needs (`SELECT` on every table and sequence, read
//! access to the catalogs). Row-level security is switched off for the session
//! (`row_security = off`), so a role that policies would filter fails rather than compare part
//! of a table. A schema holding an object the extractor does not support is refused with
//! [`PgError::UnsupportedObject`], as a backup would be. The comparison takes no locks beyond
//! what its `SELECT`s take: a table dropped while it runs fails it, naming the table.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sourcegraph_backup_pg::PgError> {
//! use sourcegraph_backup_pg::compare::{compare, CompareOptions};
//! use sourcegraph_backup_pg::PgConnectionConfig;
//!
//! let source = PgConnectionConfig::from_url("postgres://sg@old-host/sg")?;
//! let target = PgConnectionConfig::from_url("postgres://sg@new-host/sg")?;
//! let report = compare(&source, &target, &CompareOptions::default()).await?;
//! if !report.is_identical() {
//!     eprintln!("{report}");
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::connection::PgConnectionConfig;
use crate::error::PgError;
use crate::schema::{extract_schema, ExtractOptions, ObjectKind, RenderOptions, SchemaDump, Section};

/// How many differences the report's `Display` shows.
const SHOWN_DIFFERENCES: usize = 100;

/// Session settings of every comparing connection: no timeouts, and one text form of every
/// value whatever the server's or role's defaults.
const SESSION_SETUP: &str = "SET statement_timeout = 0; SET lock_timeout = 0; \
     SET idle_in_transaction_session_timeout = 0; SET client_encoding = 'UTF8'; \
     SET standard_conforming_strings = on; \
     SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; SET TimeZone = 'UTC'; \
     SET extra_float_digits = 1; SET bytea_output = 'hex'; SET lc_monetary = 'C'";

/// What [`compare`] compares. Every part is on by default; build with the setters:
/// `CompareOptions::default().schema(false)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CompareOptions {
    /// Compare the schema, object by object (default on). Across major versions this may
    /// report deparser differences (see the [module docs](self)).
    pub schema: bool,
    /// Compare every table's row count and content hash (default on).
    pub data: bool,
    /// Compare every sequence's `last_value` and `is_called` (default on).
    pub sequences: bool,
    /// Include each object's owner in its compared DDL (default off: a restore gives the
    /// objects to the role it connects as, unless asked otherwise).
    pub owners: bool,
    /// Include each object's grants in its compared DDL (default off).
    pub grants: bool,
    /// Which schemas to compare (default: every non-system schema).
    pub extract: ExtractOptions,
    /// Connections per side hashing tables (default 2; 0: the number of cores).
    pub jobs: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            schema: true,
            data: true,
            sequences: true,
            owners: false,
            grants: false,
            extract: ExtractOptions::default(),
            jobs: 2,
        }
    }
}

impl CompareOptions {
    /// Whether to compare the schema.
    pub fn schema(mut self, on: bool) -> Self {
        self.schema = on;
        self
    }

    /// Whether to compare row counts and content hashes.
    pub fn data(mut self, on: bool) -> Self {
        self.data = on;
        self
    }

    /// Whether to compare sequence states.
    pub fn sequences(mut self, on: bool) -> Self {
        self.sequences = on;
        self
    }

    /// Whether owners are part of the compared DDL.
    pub fn owners(mut self, on: bool) -> Self {
        self.owners = on;
        self
    }

    /// Whether grants are part of the compared DDL.
    pub fn grants(mut self, on: bool) -> Self {
        self.grants = on;
        self
    }

    /// Which schemas to compare.
    pub fn extract(mut self, extract: ExtractOptions) -> Self {
        self.extract = extract;
        self
    }

    /// Connections per side hashing tables (0: the number of cores).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs;
        self
    }

    fn effective_jobs(&self) -> usize {
        match self.jobs {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// How one thing differs between source and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// In the source, not in the target.
    Missing,
    /// In the target, not in the source.
    Extra,
    /// On both sides, not the same.
    Different,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Missing => "missing in target",
            Change::Extra => "only in target",
            Change::Different => "different",
        })
    }
}

/// A schema object that is missing, extra or different.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDifference {
    /// The object's identity, e.g. `index public.repo_name_idx`.
    pub identity: String,
    /// What it is.
    pub kind: ObjectKind,
    /// How it differs.
    pub change: Change,
    /// Its DDL in the source, if there.
    pub source_sql: Option<String>,
    /// Its DDL in the target, if there.
    pub target_sql: Option<String>,
}

/// Row count and content hash of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFingerprint {
    /// Number of rows.
    pub rows: i64,
    /// Order-independent content hash (32 hex digits, see the [module docs](self)).
    pub hash: String,
}

impl fmt::Display for TableFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} rows, hash {}", self.rows, self.hash)
    }
}

/// A table that is missing, extra, or holds other rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDifference {
    /// The table's qualified name, quoted where needed (`public.repo`).
    pub table: String,
    /// How it differs.
    pub change: Change,
    /// Its rows in the source, if there.
    pub source: Option<TableFingerprint>,
    /// Its rows in the target, if there.
    pub target: Option<TableFingerprint>,
}

/// The state of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceState {
    /// `last_value`.
    pub last_value: i64,
    /// `is_called`.
    pub is_called: bool,
}

impl fmt::Display for SequenceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "last_value {}, is_called {}", self.last_value, self.is_called)
    }
}

/// A sequence that is missing, extra, or in another state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceDifference {
    /// The sequence's qualified name, quoted where needed (`public.repo_id_seq`).
    pub sequence: String,
    /// How it differs.
    pub change: Change,
    /// Its state in the source, if there.
    pub source: Option<SequenceState>,
    /// Its state in the target, if there.
    pub target: Option<SequenceState>,
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompareSide {
    /// `host:port/dbname` (no user, no password).
    pub endpoint: String,
    /// The server's `server_version_num`.
    pub server_version_num: i32,
}

/// How many things were compared (the union of both sides; 0 for a part left out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompareCounts {
    /// Schema objects.
    pub objects: usize,
    /// Tables.
    pub tables: usize,
    /// Sequences.
    pub sequences: usize,
}

/// What [`compare`] found, per category, each difference named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompareReport {
    /// The source database.
    pub source: CompareSide,
    /// The target database.
    pub target: CompareSide,
    /// What was compared.
    pub options: CompareOptions,
    /// How many objects, tables and sequences were compared.
    pub compared: CompareCounts,
    /// Schema objects missing, extra or different, by identity.
    pub schema: Vec<ObjectDifference>,
    /// Tables missing, extra or with other rows, by name.
    pub tables: Vec<TableDifference>,
    /// Sequences missing, extra or in another state, by name.
    pub sequences: Vec<SequenceDifference>,
    /// What the reader should know, e.g. that the majors differ (see the [module docs](self)).
    pub notes: Vec<String>,
}

impl CompareReport {
    /// Whether no difference was found in what was compared.
    pub fn is_identical(&self) -> bool {
        self.schema.is_empty() && self.tables.is_empty() && self.sequences.is_empty()
    }

    /// Every difference as one line: schema objects, then tables, then sequences.
    pub fn differences(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in &self.schema {
            let mut line = format!("schema: {}: {}", d.identity, d.change);
            if let (Some(s), Some(t)) = (&d.source_sql, &d.target_sql) {
                if let Some((a, b)) = first_different_line(s, t) {
                    line += &format!(" (source: {a:?}, target: {b:?})");
                }
            }
            out.push(line);
        }
        for d in &self.tables {
            out.push(format!(
                "table: {}: {}{}",
                d.table,
                d.change,
                both_sides(d.source.as_ref(), d.target.as_ref())
            ));
        }
        for d in &self.sequences {
            out.push(format!(
                "sequence: {}: {}{}",
                d.sequence,
                d.change,
                both_sides(d.source.as_ref(), d.target.as_ref())
            ));
        }
        out
    }
}

impl fmt::Display for CompareReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        if self.is_identical() {
            return writeln!(
                f,
                "identical: {} objects, {} tables, {} sequences compared",
                self.compared.objects, self.compared.tables, self.compared.sequences
            );
        }
        let lines = self.differences();
        writeln!(f, "{} differences:", lines.len())?;
        for line in lines.iter().take(SHOWN_DIFFERENCES) {
            writeln!(f, "{line}")?;
        }
        if lines.len() > SHOWN_DIFFERENCES {
            writeln!(f, "... {} more", lines.len() - SHOWN_DIFFERENCES)?;
        }
        Ok(())
    }
}

/// ` (source X / target Y)`, or the one side present.
fn both_sides<T: fmt::Display>(source: Option<&T>, target: Option<&T>) -> String {
    match (source, target) {
        (Some(s), Some(t)) => format!(" (source {s} / target {t})"),
        (Some(s), None) => format!(" (source {s})"),
        (None, Some(t)) => format!(" (target {t})"),
        (None, None) => String::new(),
    }
}

/// The first line where two texts differ (an empty string past the end of one).
fn first_different_line<'a>(a: &'a str, b: &'a str) -> Option<(&'a str, &'a str)> {
    let (mut la, mut lb) = (a.lines(), b.lines());
    loop {
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => return Some((x.unwrap_or(""), y.unwrap_or(""))),
        }
    }
}

/// Compares database `source` with database `target`: schema object by object, every table's
/// row count and content hash, every sequence's state, as `opts` says. Each side is read in
/// one consistent snapshot; both sides are read at the same time. Differences are returned in
/// the report (an `Ok` does not mean identical: see [`CompareReport::is_identical`]); errors
/// are failures to connect or read. See the [module docs](self) for cost and caveats.
pub async fn compare(
    source: &PgConnectionConfig,
    target: &PgConnectionConfig,
    opts: &CompareOptions,
) -> Result<CompareReport, PgError> {
    let (src, dst) = tokio::try_join!(read_side(source, opts), read_side(target, opts))?;
    let mut notes = Vec::new();
    let (src_major, dst_major) = (src.version / 10000, dst.version / 10000);
    if opts.schema && src_major != dst_major {
        notes.push(format!(
            "the source runs PostgreSQL {src_major} and the target {dst_major}: each server \
             deparses view, rule, policy, trigger and routine bodies its own way, so schema \
             differences in those objects may be the deparser's; compare data and sequences only \
             (schema off) or against a reference restored on the target server"
        ));
    }
    let (schema, objects) = if opts.schema {
        schema_differences(&src.dump, &dst.dump, opts)
    } else {
        (Vec::new(), 0)
    };
    let (tables, table_count) = map_differences(&src.tables, &dst.tables, |table, change, source, target| {
        TableDifference {
            table,
            change,
            source,
            target,
        }
    });
    let (sequences, sequence_count) = map_differences(
        &src.sequences,
        &dst.sequences,
        |sequence, change, source, target| SequenceDifference {
            sequence,
            change,
            source,
            target,
        },
    );
    Ok(CompareReport {
        source: CompareSide {
            endpoint: source.endpoint(),
            server_version_num: src.version,
        },
        target: CompareSide {
            endpoint: target.endpoint(),
            server_version_num: dst.version,
        },
        options: opts.clone(),
        compared: CompareCounts {
            objects,
            tables: table_count,
            sequences: sequence_count,
        },
        schema,
        tables,
        sequences,
        notes,
    })
}

/// What was read of one side, in one snapshot.
struct Side {
    version: i32,
    dump: SchemaDump,
    tables: BTreeMap<String, TableFingerprint>,
    sequences: BTreeMap<String, SequenceState>,
}

/// [`PgError::Query`] naming the side and what was being done.
fn query_err(endpoint: &str, what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
    crate::sql::query_err(format!("comparing {}: {}", endpoint, what.into()))
}

/// Reads one side: the schema, the sequences and (with workers adopting the snapshot) the
/// tables' fingerprints.
async fn read_side(config: &PgConnectionConfig, opts: &CompareOptions) -> Result<Side, PgError> {
    let endpoint = config.endpoint();
    let client = config.connect().await?;
    client
        .batch_execute(SESSION_SETUP)
        .await
        .map_err(query_err(&endpoint, "setting up the session"))?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL row_security = off")
        .await
        .map_err(query_err(&endpoint, "opening the snapshot transaction"))?;
    let version: i32 = client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int4",
            &[],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(query_err(&endpoint, "reading server_version_num"))?;
    let dump = extract_schema(&client, &opts.extract).await?;

    let mut sequences = BTreeMap::new();
    if opts.sequences {
        for s in &dump.sequences {
            let what = format!("reading sequence {}", s.qualified_name);
            let row = client
                .query_one(
                    &format!("SELECT last_value, is_called FROM {}", s.qualified_name),
                    &[],
                )
                .await
                .map_err(query_err(&endpoint, what.clone()))?;
            let state = SequenceState {
                last_value: row.try_get(0).map_err(query_err(&endpoint, what.clone()))?,
                is_called: row.try_get(1).map_err(query_err(&endpoint, what))?,
            };
            sequences.insert(s.qualified_name.clone(), state);
        }
    }

    let tables = if opts.data {
        fingerprint_tables(config, &client, &dump, opts.effective_jobs()).await?
    } else {
        BTreeMap::new()
    };
    client
        .batch_execute("COMMIT")
        .await
        .map_err(query_err(&endpoint, "ending the snapshot transaction"))?;
    Ok(Side {
        version,
        dump,
        tables,
        sequences,
    })
}

/// Row count and hash of every table's own rows, largest tables first, on the leader and
/// `jobs - 1` workers in the leader's snapshot.
async fn fingerprint_tables(
    config: &PgConnectionConfig,
    leader: &Client,
    dump: &SchemaDump,
    jobs: usize,
) -> Result<BTreeMap<String, TableFingerprint>, PgError> {
    let endpoint = config.endpoint();
    let mut todo: Vec<(&str, i64)> = dump
        .tables
        .iter()
        .filter(|t| !t.is_partitioned)
        .map(|t| (t.qualified_name.as_str(), t.approx_bytes))
        .collect();
    todo.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let workers_wanted = jobs.max(1).min(todo.len().max(1)) - 1;
    let mut workers = Vec::with_capacity(workers_wanted);
    if workers_wanted > 0 {
        let snapshot: String = leader
            .query_one("SELECT pg_catalog.pg_export_snapshot()", &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(query_err(&endpoint, "exporting the snapshot"))?;
        for _ in 0..workers_wanted {
            let client = config.connect().await?;
            client
                .batch_execute(SESSION_SETUP)
                .await
                .map_err(query_err(&endpoint, "setting up a worker's session"))?;
            client
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
                     SET TRANSACTION SNAPSHOT {}; SET LOCAL row_security = off",
                    crate::sql::quote_literal(&snapshot)
                ))
                .await
                .map_err(query_err(&endpoint, "adopting the snapshot in a worker"))?;
            workers.push(client);
        }
    }
    let queue = Mutex::new(todo.into_iter().map(|(name, _)| name).collect::<VecDeque<_>>());
    let results = Mutex::new(BTreeMap::new());
    let runs = std::iter::once(leader)
        .chain(workers.iter())
        .map(|client| drain(client, &endpoint, &queue, &results));
    futures::future::try_join_all(runs).await?;
    for w in &workers {
        w.batch_execute("COMMIT")
            .await
            .map_err(query_err(&endpoint, "ending a worker's transaction"))?;
    }
    Ok(results.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Fingerprints tables from `queue` on `client` until it is empty.
async fn drain(
    client: &Client,
    endpoint: &str,
    queue: &Mutex<VecDeque<&str>>,
    results: &Mutex<BTreeMap<String, TableFingerprint>>,
) -> Result<(), PgError> {
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let Some(table) = next else {
            return Ok(());
        };
        let fingerprint = fingerprint(client, endpoint, table).await?;
        results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(table.to_string(), fingerprint);
    }
}

/// Row count and order-independent content hash of a table's own rows (see the module docs).
async fn fingerprint(client: &Client, endpoint: &str, table: &str) -> Result<TableFingerprint, PgError> {
    let query = format!(
        "SELECT count(*)::int8, pg_catalog.md5(count(*)::text || ':' \
                || coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::int8), 0)::text || ':' \
                || coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::int8), 0)::text) \
         FROM (SELECT pg_catalog.md5((t.*)::text) AS h FROM ONLY {table} t) AS rows"
    );
    let what = format!("hashing table {table}");
    let row = client
        .query_one(&query, &[])
        .await
        .map_err(query_err(endpoint, what.clone()))?;
    Ok(TableFingerprint {
        rows: row.try_get(0).map_err(query_err(endpoint, what.clone()))?,
        hash: row.try_get(1).map_err(query_err(endpoint, what))?,
    })
}

/// Every object's DDL rendered alone with `opts`' render options, by identity.
fn rendered_objects(dump: &SchemaDump, render: &RenderOptions) -> BTreeMap<String, (ObjectKind, String)> {
    let setup = SchemaDump::session_setup_sql();
    dump.objects
        .iter()
        .map(|o| {
            // The public renderer works on whole dumps: render a dump of this object alone.
            let single = SchemaDump {
                server_version_num: dump.server_version_num,
                objects: vec![o.clone()],
                tables: Vec::new(),
                sequences: Vec::new(),
                extensions: dump.extensions.clone(),
            };
            let script = match o.section {
                Section::PreData => single.pre_data_sql(render),
                Section::PostData => single.post_data_sql(render),
            };
            let sql = script
                .strip_prefix(setup)
                .unwrap_or(&script)
                .trim_start_matches('\n');
            (o.identity.clone(), (o.kind, sql.to_string()))
        })
        .collect()
}

/// Schema objects missing, extra or different, and how many identities were compared.
fn schema_differences(
    src: &SchemaDump,
    dst: &SchemaDump,
    opts: &CompareOptions,
) -> (Vec<ObjectDifference>, usize) {
    let render = RenderOptions {
        include_owners: opts.owners,
        include_acl: opts.grants,
        ..RenderOptions::default()
    };
    let (a, b) = (rendered_objects(src, &render), rendered_objects(dst, &render));
    let identities: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = Vec::new();
    for identity in &identities {
        let (s, t) = (a.get(*identity), b.get(*identity));
        let change = match (s, t) {
            (Some(_), None) => Change::Missing,
            (None, Some(_)) => Change::Extra,
            (Some(s), Some(t)) if s != t => Change::Different,
            _ => continue,
        };
        let kind = s.or(t).map_or(ObjectKind::Table, |(k, _)| *k);
        out.push(ObjectDifference {
            identity: (*identity).clone(),
            kind,
            change,
            source_sql: s.map(|(_, sql)| sql.clone()),
            target_sql: t.map(|(_, sql)| sql.clone()),
        });
    }
    (out, identities.len())
}

/// Entries missing on one side or differing, built with `make`, and how many names were
/// compared.
fn map_differences<V: Clone + PartialEq, D>(
    src: &BTreeMap<String, V>,
    dst: &BTreeMap<String, V>,
    make: impl Fn(String, Change, Option<V>, Option<V>) -> D,
) -> (Vec<D>, usize) {
    let names: BTreeSet<&String> = src.keys().chain(dst.keys()).collect();
    let mut out = Vec::new();
    for name in &names {
        let (s, t) = (src.get(*name), dst.get(*name));
        let change = match (s, t) {
            (Some(_), None) => Change::Missing,
            (None, Some(_)) => Change::Extra,
            (Some(s), Some(t)) if s != t => Change::Different,
            _ => continue,
        };
        out.push(make((*name).clone(), change, s.cloned(), t.cloned()));
    }
    (out, names.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_differences_names_missing_extra_and_different() {
        let src = BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2), ("c".to_string(), 3)]);
        let dst = BTreeMap::from([("b".to_string(), 5), ("c".to_string(), 3), ("d".to_string(), 4)]);
        let (diffs, count) = map_differences(&src, &dst, |n, c, s, t| (n, c, s, t));
        assert_eq!(count, 4);
        assert_eq!(
            diffs,
            vec![
                ("a".to_string(), Change::Missing, Some(1), None),
                ("b".to_string(), Change::Different, Some(2), Some(5)),
                ("d".to_string(), Change::Extra, None, Some(4)),
            ]
        );
    }

    #[test]
    fn first_different_line_points_at_the_change() {
        assert_eq!(first_different_line("a\nb\n", "a\nb\n"), None);
        assert_eq!(first_different_line("a\nb\n", "a\nc\n"), Some(("b", "c")));
        assert_eq!(first_different_line("a\n", "a\nc\n"), Some(("", "c")));
    }

    #[test]
    fn options_build_and_default_to_everything() {
        let o = CompareOptions::default();
        assert!(o.schema && o.data && o.sequences && !o.owners && !o.grants);
        let o = o.schema(false).jobs(0);
        assert!(!o.schema);
        assert!(o.effective_jobs() >= 1);
    }
}
