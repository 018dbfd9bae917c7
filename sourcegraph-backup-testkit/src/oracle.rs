//! The correctness oracle: two databases are "identical" when `pg_dump --schema-only` prints the
//! same text for both, every table has the same rows, and every sequence the same state.
//!
//! Across major versions compare the restored target with a reference restored by
//! pg_dump/pg_restore into the same target server (servers deparse views differently), see
//! `/work/shared/mission/test-environment.md`.

use std::collections::BTreeMap;
use std::fmt;

use crate::cluster::PgCluster;
use crate::error::{HarnessError, Result};
use crate::process::{describe, run_checked, tail};
use crate::tools::PgClientTools;

/// How many differing lines [`OracleReport::assert_identical`] shows.
const SHOWN_LINES: usize = 60;

/// Row count and content hash of every ordinary and partitioned table, keyed by the quoted
/// qualified name (`format('%I.%I', schema, table)`).
pub type TableFingerprints = BTreeMap<String, (i64, String)>;

/// `last_value` and `is_called` of every sequence, keyed by the quoted qualified name.
pub type SequenceStates = BTreeMap<String, (i64, bool)>;

/// What [`compare`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OracleReport {
    /// Unified diff of the normalized schema dumps (source `-`, target `+`); empty when equal.
    pub schema_diff: Vec<String>,
    /// Tables missing on one side or with a different row count or content hash.
    pub table_differences: Vec<String>,
    /// Sequences missing on one side or with a different `last_value`/`is_called`.
    pub sequence_differences: Vec<String>,
    /// Number of tables in the source database.
    pub tables_compared: usize,
    /// Number of sequences in the source database.
    pub sequences_compared: usize,
}

impl OracleReport {
    /// Whether no difference was found.
    pub fn is_identical(&self) -> bool {
        self.schema_diff.is_empty()
            && self.table_differences.is_empty()
            && self.sequence_differences.is_empty()
    }

    /// All differences as lines: the schema diff, then tables, then sequences.
    pub fn differences(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.schema_diff.is_empty() {
            lines.push("schema (pg_dump --schema-only, - source, + target):".to_string());
            lines.extend(self.schema_diff.iter().cloned());
        }
        lines.extend(self.table_differences.iter().map(|d| format!("table {d}")));
        lines.extend(self.sequence_differences.iter().map(|d| format!("sequence {d}")));
        lines
    }

    /// Panics with the first 60 differing lines unless the databases are identical.
    #[track_caller]
    pub fn assert_identical(&self) {
        if !self.is_identical() {
            panic!("databases differ:\n{self}");
        }
    }
}

impl fmt::Display for OracleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_identical() {
            return write!(
                f,
                "identical ({} tables, {} sequences)",
                self.tables_compared, self.sequences_compared
            );
        }
        let lines = self.differences();
        for line in lines.iter().take(SHOWN_LINES) {
            writeln!(f, "{line}")?;
        }
        if lines.len() > SHOWN_LINES {
            writeln!(f, "... {} more lines", lines.len() - SHOWN_LINES)?;
        }
        Ok(())
    }
}

/// Compares database `src_db` on `src` with `dst_db` on `dst`: schema dumps (with pg_dump of the
/// newer of the two majors), per-table row counts and content hashes, sequence states.
pub async fn compare(src: &PgCluster, src_db: &str, dst: &PgCluster, dst_db: &str) -> Result<OracleReport> {
    let tools = PgClientTools::for_server_major(src.major().max(dst.major()))?;
    let (src_schema, dst_schema) =
        tokio::try_join!(schema_dump(&tools, src, src_db), schema_dump(&tools, dst, dst_db))?;
    let (src_tables, dst_tables) =
        tokio::try_join!(table_fingerprints(src, src_db), table_fingerprints(dst, dst_db))?;
    let (src_seqs, dst_seqs) = tokio::try_join!(sequence_states(src, src_db), sequence_states(dst, dst_db))?;
    Ok(OracleReport {
        schema_diff: diff_lines(&src_schema, &dst_schema),
        table_differences: map_differences(&src_tables, &dst_tables, |(rows, hash)| {
            format!("{rows} rows, hash {hash}")
        }),
        sequence_differences: map_differences(&src_seqs, &dst_seqs, |(last, called)| {
            format!("last_value {last}, is_called {called}")
        }),
        tables_compared: src_tables.len(),
        sequences_compared: src_seqs.len(),
    })
}

/// The reference restore for comparisons across majors: creates `dst_db` on `dst` and fills it
/// from `src_db` on `src` with `pg_dump -Fc` + `pg_restore --no-owner --no-acl --exit-on-error`,
/// both of the newer of the two majors. Compare a restore under test with this database (both on
/// `dst`) instead of with the source.
pub async fn restore_reference(src: &PgCluster, src_db: &str, dst: &PgCluster, dst_db: &str) -> Result<()> {
    let tools = PgClientTools::for_server_major(src.major().max(dst.major()))?;
    dst.create_database(dst_db).await?;
    let dir = tempfile::tempdir().map_err(|source| HarnessError::Io {
        what: "creating a directory for the reference dump",
        path: std::env::temp_dir(),
        source,
    })?;
    let file = dir.path().join("reference.dump");
    let mut dump = tools.command("pg_dump");
    dump.args(["--format=custom", "--file"])
        .arg(&file)
        .arg("--dbname")
        .arg(src.key_value(src_db));
    let mut restore = tools.command("pg_restore");
    restore
        .args(["--no-owner", "--no-acl", "--exit-on-error", "--dbname"])
        .arg(dst.key_value(dst_db))
        .arg(&file);
    tokio::task::spawn_blocking(move || {
        run_checked(&mut dump)?;
        run_checked(&mut restore)?;
        drop(dir);
        Ok(())
    })
    .await
    .map_err(|e| HarnessError::Spawn {
        program: "pg_dump | pg_restore".into(),
        source: std::io::Error::other(e.to_string()),
    })?
}

/// `pg_dump --schema-only --no-owner --no-acl` of `db`, normalized: comment lines, the
/// `\restrict`/`\unrestrict` lines (random keys, pg_dump >= 17.6/16.10/15.14) and
/// `SET transaction_timeout` removed, runs of blank lines collapsed.
pub async fn schema_dump(tools: &PgClientTools, cluster: &PgCluster, db: &str) -> Result<String> {
    let mut cmd = tools.command("pg_dump");
    cmd.args(["--schema-only", "--no-owner", "--no-acl", "--dbname"])
        .arg(cluster.key_value(db));
    let command = describe(&cmd);
    let output = tokio::process::Command::from(cmd)
        .output()
        .await
        .map_err(|source| HarnessError::Spawn {
            program: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(HarnessError::CommandFailed {
            command,
            status: output.status.to_string(),
            output: tail(&String::from_utf8_lossy(&output.stderr), 30),
        });
    }
    Ok(normalize_dump(&String::from_utf8_lossy(&output.stdout)))
}

fn normalize_dump(dump: &str) -> String {
    let mut out = String::with_capacity(dump.len());
    let mut previous_blank = true;
    for line in dump.lines() {
        if line.starts_with("--")
            || line.starts_with("\\restrict")
            || line.starts_with("\\unrestrict")
            || line.starts_with("SET transaction_timeout")
        {
            continue;
        }
        let blank = line.trim().is_empty();
        if blank && previous_blank {
            continue;
        }
        previous_blank = blank;
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Row count and content hash of every ordinary and partitioned table outside the system
/// schemas. The hash is md5 over the rows' text forms (`(t.*)::text`: a column named `t` would
/// shadow the row alias in `t::text`) sorted bytewise (`COLLATE "C"`, so it does
/// not depend on the database collation); rows are hashed one by one first to bound the size of
/// the aggregate. A partitioned table's rows are those of all its partitions.
pub async fn table_fingerprints(cluster: &PgCluster, db: &str) -> Result<TableFingerprints> {
    let client = cluster.connect(db).await?;
    let mut out = BTreeMap::new();
    for name in user_relations(&client, db, "('r', 'p')", "listing tables").await? {
        let query = format!(
            "SELECT count(*)::int8, \
                    md5(coalesce(string_agg(md5((t.*)::text), E'\\n' ORDER BY (t.*)::text COLLATE \"C\"), '')) \
             FROM {name} t"
        );
        let fingerprint = client
            .query_one(&query, &[])
            .await
            .map_err(sql_error(db, format!("hashing table {name}")))?;
        out.insert(name, (fingerprint.get(0), fingerprint.get(1)));
    }
    Ok(out)
}

/// `last_value` and `is_called` of every sequence outside the system schemas.
pub async fn sequence_states(cluster: &PgCluster, db: &str) -> Result<SequenceStates> {
    let client = cluster.connect(db).await?;
    let mut out = BTreeMap::new();
    for name in user_relations(&client, db, "('S')", "listing sequences").await? {
        let state = client
            .query_one(&format!("SELECT last_value, is_called FROM {name}"), &[])
            .await
            .map_err(sql_error(db, format!("reading sequence {name}")))?;
        out.insert(name, (state.get(0), state.get(1)));
    }
    Ok(out)
}

/// Quoted `schema.name` of every relation of the given kinds (an SQL list such as
/// `('r', 'p')`) outside the system schemas, sorted.
async fn user_relations(
    client: &tokio_postgres::Client,
    db: &str,
    relkinds: &str,
    what: &str,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            &format!(
                "SELECT format('%I.%I', n.nspname, c.relname) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN {relkinds} AND n.nspname <> 'information_schema' \
                   AND n.nspname NOT LIKE 'pg\\_%' \
                 ORDER BY 1"
            ),
            &[],
        )
        .await
        .map_err(sql_error(db, what.to_string()))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn sql_error(db: &str, what: String) -> impl FnOnce(tokio_postgres::Error) -> HarnessError {
    let database = db.to_string();
    move |source| HarnessError::Postgres {
        what,
        database,
        source,
    }
}

/// Unified diff lines of `a` → `b`; empty when equal.
fn diff_lines(a: &str, b: &str) -> Vec<String> {
    if a == b {
        return Vec::new();
    }
    similar::TextDiff::from_lines(a, b)
        .unified_diff()
        .context_radius(2)
        .to_string()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Entries missing on one side or differing, described with `show`.
fn map_differences<V: PartialEq>(
    src: &BTreeMap<String, V>,
    dst: &BTreeMap<String, V>,
    show: impl Fn(&V) -> String,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, s) in src {
        match dst.get(name) {
            None => out.push(format!("{name}: only in source ({})", show(s))),
            Some(d) if d != s => out.push(format!("{name}: source {} / target {}", show(s), show(d))),
            Some(_) => {}
        }
    }
    for (name, d) in dst {
        if !src.contains_key(name) {
            out.push(format!("{name}: only in target ({})", show(d)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_strips_volatile_lines() {
        let a = "--\n-- PostgreSQL database dump\n--\n\\restrict abc\n\nSET transaction_timeout = 0;\nSET x = 1;\n\n\n\nCREATE TABLE t ();\n\\unrestrict abc\n\n";
        let b = "\\restrict xyz\nSET x = 1;\n\nCREATE TABLE t ();\n\\unrestrict xyz\n";
        assert_eq!(normalize_dump(a), normalize_dump(b));
        assert_eq!(normalize_dump(b), "SET x = 1;\n\nCREATE TABLE t ();\n");
    }

    #[test]
    fn report_lists_differences() {
        let src = BTreeMap::from([("a".to_string(), 1), ("b".to_string(), 2)]);
        let dst = BTreeMap::from([("b".to_string(), 3), ("c".to_string(), 4)]);
        let diffs = map_differences(&src, &dst, |v| v.to_string());
        assert_eq!(
            diffs,
            vec![
                "a: only in source (1)",
                "b: source 2 / target 3",
                "c: only in target (4)"
            ]
        );
        let report = OracleReport {
            table_differences: diffs,
            ..Default::default()
        };
        assert!(!report.is_identical());
        assert!(report.to_string().contains("table b: source 2 / target 3"));
        assert!(diff_lines("x\n", "x\n").is_empty());
        assert!(diff_lines("x\ny\n", "x\nz\n").contains(&"+z".to_string()));
    }
}
