//! The database source: the current revisions, read in one consistent transaction.

use chrono::{DateTime, Utc};
use sourcegraph_backup_pg::PgConnectionConfig;
use tokio_postgres::{Client, IsolationLevel};

use super::schema::{set_tenant, Schema, EXTSVC_TABLE, SETTINGS_TABLE, SITE_TABLE};
use crate::error::ConfigError;
use crate::model::{ConfigDocument, ConfigSnapshot, DocumentKind, EncryptedValue, Provenance};

/// How to read configuration from a frontend database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSourceOptions {
    /// Carry encrypted code host configs as ciphertext plus key id instead of failing. Such a
    /// backup restores only into an instance configured with the same encryption keys.
    pub carry_encrypted: bool,
    /// The tenant whose rows are read on multi-tenant schemas (enterprise instances: 1).
    pub tenant_id: i32,
}

impl Default for DatabaseSourceOptions {
    fn default() -> Self {
        DatabaseSourceOptions {
            carry_encrypted: false,
            tenant_id: 1,
        }
    }
}

/// Whether an `encryption_key_id` value means ciphertext ('' and 'unmigrated' mean plaintext).
pub(crate) fn is_encrypted_key_id(key_id: &str) -> bool {
    !key_id.is_empty() && key_id != "unmigrated"
}

impl ConfigSnapshot {
    /// Connects to the frontend database and reads the snapshot (see
    /// [`from_client`](Self::from_client)).
    pub async fn from_database(
        config: &PgConnectionConfig,
        options: &DatabaseSourceOptions,
    ) -> Result<ConfigSnapshot, ConfigError> {
        let mut client = config.connect().await?;
        Self::from_client(&mut client, &config.endpoint(), options).await
    }

    /// Reads, in one `REPEATABLE READ READ ONLY` transaction, the newest `site` row of
    /// `critical_and_site_config`, the newest `settings` row with no user and no org, and every
    /// `external_services` row not soft-deleted. `endpoint` names the database in provenance and
    /// messages (no password). Encrypted connections fail the read, naming each, unless
    /// `options.carry_encrypted`.
    pub async fn from_client(
        client: &mut Client,
        endpoint: &str,
        options: &DatabaseSourceOptions,
    ) -> Result<ConfigSnapshot, ConfigError> {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(ConfigError::query("starting a read-only transaction"))?;
        let schema = Schema::detect(&tx).await?;
        schema.require(endpoint, SITE_TABLE, &["id", "type", "contents"])?;
        schema.require(endpoint, SETTINGS_TABLE, &["id", "contents", "user_id", "org_id"])?;
        schema.require(
            endpoint,
            EXTSVC_TABLE,
            &["id", "kind", "display_name", "config", "deleted_at"],
        )?;
        set_tenant(&tx, &schema, options.tenant_id).await?;
        let source = |table: &str| format!("database {endpoint} table {table}");
        let ts = |t: &super::schema::Table, c: &str| {
            if t.has(c) {
                c.to_owned()
            } else {
                "NULL::timestamptz".into()
            }
        };
        let mut documents = Vec::new();
        let mut warnings = Vec::new();

        let s = &schema.site;
        let sql = format!(
            "SELECT id::bigint, contents, {}, {}, {} FROM {SITE_TABLE} WHERE type = 'site' ORDER BY id DESC LIMIT 1",
            ts(s, "created_at"),
            ts(s, "updated_at"),
            s.bigint_or_null("author_user_id"),
        );
        let row = tx
            .query_opt(&sql, &[])
            .await
            .map_err(ConfigError::query(format!("reading {SITE_TABLE}")))?;
        match row {
            Some(r) => documents.push(ConfigDocument::new(
                DocumentKind::SiteConfiguration,
                r.get::<_, String>(1),
                Provenance {
                    source: source(SITE_TABLE),
                    revision_id: Some(r.get(0)),
                    created_at: r.get::<_, Option<DateTime<Utc>>>(2),
                    updated_at: r.get::<_, Option<DateTime<Utc>>>(3),
                    author_user_id: r.get(4),
                },
            )),
            None => warnings.push(format!(
                "{SITE_TABLE} has no site revision: the instance never saved a site configuration"
            )),
        }

        let s = &schema.settings;
        let sql = format!(
            "SELECT id::bigint, contents, {}, {} FROM {SETTINGS_TABLE} \
             WHERE user_id IS NULL AND org_id IS NULL{} ORDER BY id DESC LIMIT 1",
            ts(s, "created_at"),
            s.bigint_or_null("author_user_id"),
            s.tenant_filter(options.tenant_id),
        );
        let row = tx
            .query_opt(&sql, &[])
            .await
            .map_err(ConfigError::query(format!("reading {SETTINGS_TABLE}")))?;
        if let Some(r) = row {
            documents.push(ConfigDocument::new(
                DocumentKind::GlobalSettings,
                r.get::<_, String>(1),
                Provenance {
                    source: source(SETTINGS_TABLE),
                    revision_id: Some(r.get(0)),
                    created_at: r.get::<_, Option<DateTime<Utc>>>(2),
                    updated_at: None,
                    author_user_id: r.get(3),
                },
            ));
        }

        let e = &schema.extsvc;
        let namespaced = e.has("namespace_user_id") || e.has("namespace_org_id");
        let owner = |c: &str| {
            if e.has(c) {
                format!("{c} IS NOT NULL")
            } else {
                "false".into()
            }
        };
        let sql = format!(
            "SELECT id::bigint, kind, display_name, config, {}, {}, {}, ({} OR {}) FROM {EXTSVC_TABLE} \
             WHERE deleted_at IS NULL{} ORDER BY id",
            ts(e, "created_at"),
            ts(e, "updated_at"),
            if e.has("encryption_key_id") {
                "encryption_key_id"
            } else {
                "''::text"
            },
            owner("namespace_user_id"),
            owner("namespace_org_id"),
            e.tenant_filter(options.tenant_id),
        );
        let rows = tx
            .query(&sql, &[])
            .await
            .map_err(ConfigError::query(format!("reading {EXTSVC_TABLE}")))?;
        let mut encrypted = Vec::new();
        let mut skipped_owned = 0;
        for r in rows {
            if namespaced && r.get::<_, bool>(7) {
                skipped_owned += 1;
                continue;
            }
            let kind = DocumentKind::CodeHostConnection {
                kind: r.get(1),
                display_name: r.get(2),
                id: Some(r.get(0)),
            };
            let key_id: String = r.get(6);
            let mut doc = ConfigDocument::new(
                kind,
                r.get::<_, String>(3),
                Provenance {
                    source: source(EXTSVC_TABLE),
                    revision_id: Some(r.get(0)),
                    created_at: r.get::<_, Option<DateTime<Utc>>>(4),
                    updated_at: r.get::<_, Option<DateTime<Utc>>>(5),
                    author_user_id: None,
                },
            );
            if is_encrypted_key_id(&key_id) {
                encrypted.push(doc.name());
                doc.encryption = Some(EncryptedValue { key_id });
            }
            documents.push(doc);
        }
        tx.commit()
            .await
            .map_err(ConfigError::query("ending the read-only transaction"))?;
        if !encrypted.is_empty() && !options.carry_encrypted {
            return Err(ConfigError::EncryptedConnections {
                connections: encrypted,
            });
        }
        if skipped_owned > 0 {
            warnings.push(format!(
                "{skipped_owned} user- or organization-owned code host connection(s) were not included: they travel with the database backup"
            ));
        }
        if !encrypted.is_empty() {
            warnings.push(format!(
                "{} code host connection(s) carried as ciphertext ({}): restorable only into an instance configured with the same encryption keys",
                encrypted.len(),
                encrypted.join(", ")
            ));
        }
        Ok(ConfigSnapshot {
            documents,
            source: format!("database {endpoint}"),
            taken_at: Some(Utc::now()),
            extsvc_file_text: None,
            warnings,
        })
    }
}
