//! Planning an import against the target's current revisions.
//!
//! The plan records the revisions it was made against (latest site and global settings row ids,
//! every live code host row's id and `updated_at`); [`apply`](super::apply) re-checks them inside
//! its transaction, like the `lastID` check of Sourcegraph's UI.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use similar::TextDiff;
use tokio_postgres::GenericClient;

use super::read::is_encrypted_key_id;
use super::schema::{Schema, EXTSVC_TABLE, SETTINGS_TABLE, SITE_TABLE};
use crate::error::ConfigError;
use crate::model::{ConfigDocument, ConfigSnapshot, DocumentKind, EncryptedValue, Provenance};
use crate::redact::redacted_text;
use crate::validate::validate_snapshot;

/// What an import does to one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlanAction {
    /// A new revision or connection is written (the target has none).
    Create,
    /// A new revision is written / the connection is updated (the text differs).
    Update,
    /// The target already holds exactly this text: nothing is written.
    Unchanged,
    /// The connection is soft-deleted (only with `remove_missing`).
    Remove,
}

/// One planned change. `Debug`/`Display` show the redacted diff, never the text.
#[derive(Clone)]
pub struct PlannedChange {
    /// The document's name.
    pub document: String,
    /// What the document is (for code hosts, with the target's row id when matched).
    pub kind: DocumentKind,
    /// What happens.
    pub action: PlanAction,
    /// The target row planned against (site / settings revision, or code host id).
    pub target_id: Option<i64>,
    /// Unified diff of the redacted texts (target → backup); empty when unchanged.
    pub diff: String,
    /// The text to write (secret-bearing; not shown by `Debug`).
    pub(crate) text: String,
    pub(crate) redacted: String,
    pub(crate) encryption: Option<EncryptedValue>,
}

impl fmt::Debug for PlannedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlannedChange")
            .field("document", &self.document)
            .field("action", &self.action)
            .field("target_id", &self.target_id)
            .field("diff", &self.diff)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PlannedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} {}", self.action, self.document)?;
        if !self.diff.is_empty() {
            write!(f, "\n{}", self.diff)?;
        }
        Ok(())
    }
}

/// One planned change as reports list it: no text, no diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSummary {
    /// The document's name.
    pub document: String,
    /// What happens.
    pub action: PlanAction,
    /// The target row planned against.
    pub target_id: Option<i64>,
}

/// The revisions a plan was made against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Baseline {
    pub site: Option<i64>,
    pub settings: Option<i64>,
    /// Live code host rows: id → (updated_at, kind, display name).
    pub extsvc: BTreeMap<i64, (Option<DateTime<Utc>>, String, String)>,
}

/// An import plan: per document, what would be written.
#[derive(Debug, Clone)]
pub struct ImportPlan {
    /// The changes, site configuration first, then global settings, then code hosts.
    pub changes: Vec<PlannedChange>,
    pub(crate) baseline: Baseline,
    pub(crate) schema: Schema,
    pub(crate) endpoint: String,
}

impl ImportPlan {
    /// Whether applying it would write anything.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != PlanAction::Unchanged)
    }

    /// A summary (document, action, target id) for reports; no texts, no diffs.
    pub fn summary(&self) -> Vec<ChangeSummary> {
        self.changes
            .iter()
            .map(|c| ChangeSummary {
                document: c.document.clone(),
                action: c.action,
                target_id: c.target_id,
            })
            .collect()
    }
}

impl fmt::Display for ImportPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "import into {}:", self.endpoint)?;
        for c in &self.changes {
            write!(f, "\n{c}")?;
        }
        Ok(())
    }
}

/// A live target row of `external_services`.
pub(crate) struct TargetHost {
    id: i64,
    kind: String,
    display_name: String,
    config: String,
    key_id: String,
}

/// Reads the baseline (and the target's texts) with `client`, inside the caller's transaction.
pub(crate) async fn read_baseline(
    client: &impl GenericClient,
    schema: &Schema,
    tenant: i32,
) -> Result<(Baseline, Option<String>, Option<String>, Vec<TargetHost>), ConfigError> {
    let mut b = Baseline::default();
    let site = client
        .query_opt(
            &format!(
                "SELECT id::bigint, contents FROM {SITE_TABLE} WHERE type = 'site' ORDER BY id DESC LIMIT 1"
            ),
            &[],
        )
        .await
        .map_err(ConfigError::query(format!("reading {SITE_TABLE}")))?;
    b.site = site.as_ref().map(|r| r.get(0));
    let settings = client
        .query_opt(
            &format!(
                "SELECT id::bigint, contents FROM {SETTINGS_TABLE} WHERE user_id IS NULL AND org_id IS NULL{} ORDER BY id DESC LIMIT 1",
                schema.settings.tenant_filter(tenant)
            ),
            &[],
        )
        .await
        .map_err(ConfigError::query(format!("reading {SETTINGS_TABLE}")))?;
    b.settings = settings.as_ref().map(|r| r.get(0));
    let e = &schema.extsvc;
    let rows = client
        .query(
            &format!(
                "SELECT id::bigint, kind, display_name, config, {}, {} FROM {EXTSVC_TABLE} WHERE deleted_at IS NULL{} ORDER BY id",
                if e.has("updated_at") { "updated_at" } else { "NULL::timestamptz" },
                if e.has("encryption_key_id") { "encryption_key_id" } else { "''::text" },
                e.tenant_filter(tenant)
            ),
            &[],
        )
        .await
        .map_err(ConfigError::query(format!("reading {EXTSVC_TABLE}")))?;
    let mut hosts = Vec::new();
    for r in rows {
        let h = TargetHost {
            id: r.get(0),
            kind: r.get(1),
            display_name: r.get(2),
            config: r.get(3),
            key_id: r.get(5),
        };
        b.extsvc
            .insert(h.id, (r.get(4), h.kind.clone(), h.display_name.clone()));
        hosts.push(h);
    }
    Ok((b, site.map(|r| r.get(1)), settings.map(|r| r.get(1)), hosts))
}

/// Validates the snapshot and the target schema, and plans the import. Reads only.
pub(crate) async fn plan(
    client: &impl GenericClient,
    endpoint: &str,
    snapshot: &ConfigSnapshot,
    remove_missing: bool,
    tenant: i32,
) -> Result<ImportPlan, ConfigError> {
    validate_snapshot(snapshot)?;
    if snapshot.site_configurations().count() > 1 {
        return Err(ConfigError::Unsupported {
            reason: "the snapshot holds several site configuration files (SITE_CONFIG_FILE lists several; Sourcegraph merges them at start-up): a database holds one; merge them and import the result".into(),
        });
    }
    let schema = Schema::detect(client).await?;
    schema.require(endpoint, SITE_TABLE, &["id", "type", "contents"])?;
    schema.require(endpoint, SETTINGS_TABLE, &["id", "contents", "user_id", "org_id"])?;
    schema.require(
        endpoint,
        EXTSVC_TABLE,
        &["id", "kind", "display_name", "config", "updated_at", "deleted_at"],
    )?;
    if snapshot.encrypted().next().is_some() && !schema.extsvc.writable("encryption_key_id") {
        return Err(ConfigError::Schema {
            database: endpoint.into(),
            what: format!(
                "column {EXTSVC_TABLE}.encryption_key_id (the backup carries encrypted connections)"
            ),
        });
    }
    super::schema::set_tenant(client, &schema, tenant).await?;
    let (baseline, site_text, settings_text, hosts) = read_baseline(client, &schema, tenant).await?;

    let mut changes = Vec::new();
    if let Some(doc) = snapshot.site_configurations().next() {
        changes.push(revision_change(doc, baseline.site, site_text.as_deref())?);
    }
    if let Some(doc) = snapshot.global_settings() {
        changes.push(revision_change(doc, baseline.settings, settings_text.as_deref())?);
    }
    // Match by kind + display name; the n-th backup connection of a pair takes the n-th target row.
    let mut by_name: BTreeMap<(String, String), Vec<&TargetHost>> = BTreeMap::new();
    for h in &hosts {
        by_name
            .entry((h.kind.to_ascii_uppercase(), h.display_name.clone()))
            .or_default()
            .push(h);
    }
    for list in by_name.values_mut() {
        list.reverse(); // pop() takes the lowest id first
    }
    for doc in snapshot.code_hosts() {
        let DocumentKind::CodeHostConnection {
            kind, display_name, ..
        } = &doc.kind
        else {
            continue;
        };
        let target = by_name
            .get_mut(&(kind.to_ascii_uppercase(), display_name.clone()))
            .and_then(Vec::pop);
        changes.push(host_change(doc, target)?);
    }
    if remove_missing {
        for h in by_name.values().flatten() {
            let target = ConfigDocument::new(
                DocumentKind::CodeHostConnection {
                    kind: h.kind.clone(),
                    display_name: h.display_name.clone(),
                    id: Some(h.id),
                },
                h.config.clone(),
                Provenance::default(),
            );
            let old = redacted_or_note(&target, &h.key_id);
            changes.push(PlannedChange {
                document: target.name(),
                kind: target.kind.clone(),
                action: PlanAction::Remove,
                target_id: Some(h.id),
                diff: diff(&target.name(), &old, ""),
                text: String::new(),
                redacted: String::new(),
                encryption: None,
            });
        }
    }
    Ok(ImportPlan {
        changes,
        baseline,
        schema,
        endpoint: endpoint.to_owned(),
    })
}

fn revision_change(
    doc: &ConfigDocument,
    latest: Option<i64>,
    target: Option<&str>,
) -> Result<PlannedChange, ConfigError> {
    let redacted = redacted_text(doc)?;
    let (action, diff_text) = match target {
        Some(t) if t == doc.text => (PlanAction::Unchanged, String::new()),
        Some(t) => {
            let old = ConfigDocument::new(doc.kind.clone(), t, Provenance::default());
            (
                PlanAction::Update,
                diff(&doc.name(), &redacted_or_note(&old, ""), &redacted),
            )
        }
        None => (PlanAction::Create, diff(&doc.name(), "", &redacted)),
    };
    Ok(PlannedChange {
        document: doc.name(),
        kind: doc.kind.clone(),
        action,
        target_id: latest,
        diff: diff_text,
        text: doc.text.clone(),
        redacted,
        encryption: None,
    })
}

fn host_change(doc: &ConfigDocument, target: Option<&TargetHost>) -> Result<PlannedChange, ConfigError> {
    let redacted = redacted_text(doc)?;
    let backup_key = doc.encryption.as_ref().map_or("", |e| e.key_id.as_str());
    let (action, diff_text, target_id, kind) = match target {
        Some(t) => {
            let kind = DocumentKind::CodeHostConnection {
                kind: t.kind.clone(),
                display_name: t.display_name.clone(),
                id: Some(t.id),
            };
            let same_encryption = is_encrypted_key_id(&t.key_id) == doc.is_encrypted()
                && (!doc.is_encrypted() || t.key_id == backup_key);
            if t.config == doc.text && same_encryption {
                (PlanAction::Unchanged, String::new(), Some(t.id), kind)
            } else {
                let old = ConfigDocument::new(kind.clone(), t.config.clone(), Provenance::default());
                (
                    PlanAction::Update,
                    diff(&doc.name(), &redacted_or_note(&old, &t.key_id), &redacted),
                    Some(t.id),
                    kind,
                )
            }
        }
        None => (
            PlanAction::Create,
            diff(&doc.name(), "", &redacted),
            None,
            doc.kind.clone(),
        ),
    };
    Ok(PlannedChange {
        document: doc.name(),
        kind,
        action,
        target_id,
        diff: diff_text,
        text: doc.text.clone(),
        redacted,
        encryption: doc.encryption.clone(),
    })
}

/// The redacted text of a target document; a note when it is encrypted or does not parse
/// (never the text itself).
fn redacted_or_note(doc: &ConfigDocument, key_id: &str) -> String {
    if is_encrypted_key_id(key_id) {
        return format!("/* encrypted in the target (key {key_id}) */\n");
    }
    redacted_text(doc)
        .unwrap_or_else(|e| format!("/* the target's text is not valid JSONC ({e}); not shown */\n"))
}

fn diff(name: &str, old: &str, new: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("target: {name}"), &format!("backup: {name}"))
        .to_string()
}
