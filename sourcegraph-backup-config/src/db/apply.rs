//! Applying a plan: one transaction, optimistic concurrency, new revisions like the UI writes.

use tokio_postgres::{Client, GenericClient};

use super::plan::{read_baseline, Baseline, ImportPlan, PlanAction};
use super::schema::{set_tenant, EXTSVC_TABLE, SETTINGS_TABLE, SITE_TABLE};
use crate::error::ConfigError;
use crate::model::DocumentKind;

/// Writes `plan` in one transaction. The configuration tables are locked against concurrent
/// writers (`SHARE ROW EXCLUSIVE`, which Sourcegraph's own inserts and updates wait for), the
/// baseline is re-read, and any revision that moved since planning aborts the import with
/// [`ConfigError::Conflict`] before anything is written.
pub(crate) async fn apply(client: &mut Client, plan: &ImportPlan, tenant: i32) -> Result<usize, ConfigError> {
    let tx = client
        .transaction()
        .await
        .map_err(ConfigError::query("starting the import transaction"))?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '30s'; LOCK TABLE {SITE_TABLE}, {SETTINGS_TABLE}, {EXTSVC_TABLE} IN SHARE ROW EXCLUSIVE MODE"
    ))
    .await
    .map_err(ConfigError::query("locking the configuration tables"))?;
    set_tenant(&tx, &plan.schema, tenant).await?;
    let (now, _, _, _) = read_baseline(&tx, &plan.schema, tenant).await?;
    check(&plan.baseline, &now)?;

    let mut written = 0;
    for c in plan.changes.iter().filter(|c| c.action != PlanAction::Unchanged) {
        let what = format!("writing {}", c.document);
        match (&c.kind, c.action) {
            (DocumentKind::SiteConfiguration, _) => {
                if plan.schema.site.writable("redacted_contents") {
                    tx.execute(
                        &format!("INSERT INTO {SITE_TABLE} (type, contents, redacted_contents) VALUES ('site', $1, $2)"),
                        &[&c.text, &c.redacted],
                    )
                    .await
                } else {
                    tx.execute(&format!("INSERT INTO {SITE_TABLE} (type, contents) VALUES ('site', $1)"), &[&c.text])
                        .await
                }
            }
            (DocumentKind::GlobalSettings, _) => {
                tx.execute(&format!("INSERT INTO {SETTINGS_TABLE} (contents) VALUES ($1)"), &[&c.text])
                    .await
            }
            (DocumentKind::CodeHostConnection { kind, display_name, .. }, PlanAction::Create) => {
                let key = c.encryption.as_ref().map_or("", |e| e.key_id.as_str());
                insert_host(&tx, plan, kind, display_name, &c.text, key).await
            }
            (DocumentKind::CodeHostConnection { .. }, PlanAction::Update) => {
                let key = c.encryption.as_ref().map_or("", |e| e.key_id.as_str());
                let sql = if plan.schema.extsvc.writable("encryption_key_id") {
                    format!("UPDATE {EXTSVC_TABLE} SET config = $1, encryption_key_id = $3, updated_at = now() WHERE id = $2::bigint")
                } else {
                    format!("UPDATE {EXTSVC_TABLE} SET config = $1, updated_at = now() WHERE id = $2::bigint AND $3::text IS NOT NULL")
                };
                tx.execute(&sql, &[&c.text, &c.target_id, &key]).await
            }
            (DocumentKind::CodeHostConnection { .. }, _) => {
                tx.execute(
                    &format!("UPDATE {EXTSVC_TABLE} SET deleted_at = now() WHERE id = $1::bigint"),
                    &[&c.target_id],
                )
                .await
            }
        }
        .map_err(ConfigError::query(what))?;
        written += 1;
    }
    tx.commit()
        .await
        .map_err(ConfigError::query("committing the import"))?;
    Ok(written)
}

async fn insert_host(
    tx: &impl GenericClient,
    plan: &ImportPlan,
    kind: &str,
    display_name: &str,
    config: &str,
    key: &str,
) -> Result<u64, tokio_postgres::Error> {
    let e = &plan.schema.extsvc;
    let mut cols = vec!["kind", "display_name", "config"];
    let mut vals = vec!["$1", "$2", "$3"];
    for ts in ["created_at", "updated_at"] {
        if e.writable(ts) {
            cols.push(ts);
            vals.push("now()");
        }
    }
    if e.writable("encryption_key_id") {
        cols.push("encryption_key_id");
        vals.push("$4");
    } else {
        vals.push("");
    }
    let vals: Vec<&str> = vals.into_iter().filter(|v| !v.is_empty()).collect();
    let sql = format!(
        "INSERT INTO {EXTSVC_TABLE} ({}) VALUES ({})",
        cols.join(", "),
        vals.join(", ")
    );
    if e.writable("encryption_key_id") {
        tx.execute(&sql, &[&kind, &display_name, &config, &key]).await
    } else {
        tx.execute(&sql, &[&kind, &display_name, &config]).await
    }
}

/// Compares the planned baseline with the one read under lock.
fn check(planned: &Baseline, now: &Baseline) -> Result<(), ConfigError> {
    let rev = |v: Option<i64>| v.map_or_else(|| "no revision".to_owned(), |id| format!("revision {id}"));
    if planned.site != now.site {
        return Err(ConfigError::Conflict {
            document: "site configuration".into(),
            planned: rev(planned.site),
            found: rev(now.site),
        });
    }
    if planned.settings != now.settings {
        return Err(ConfigError::Conflict {
            document: "global settings".into(),
            planned: rev(planned.settings),
            found: rev(now.settings),
        });
    }
    for (id, (_, kind, name)) in planned.extsvc.iter().chain(now.extsvc.iter()) {
        let (p, n) = (planned.extsvc.get(id), now.extsvc.get(id));
        if p.map(|v| v.0) != n.map(|v| v.0) {
            let state = |v: Option<&(Option<chrono::DateTime<chrono::Utc>>, String, String)>| match v {
                None => "absent or deleted".to_owned(),
                Some((Some(t), _, _)) => format!("updated at {}", t.to_rfc3339()),
                Some((None, _, _)) => "present".to_owned(),
            };
            return Err(ConfigError::Conflict {
                document: format!("code host connection {kind} {name:?} (id {id})"),
                planned: state(p),
                found: state(n),
            });
        }
    }
    Ok(())
}
