//! What the configuration tables look like in this database, and the session settings the
//! multi-tenant generations need.
//!
//! Generations seen across Sourcegraph versions (facts 1.1–1.3, 2.7): `namespace_user_id` /
//! `namespace_org_id` on `external_services` (≈3.x–5.x); no `redacted_contents` /
//! `author_user_id` (≈3.x–4.x); `tenant_id` with default `1` (5.8) or
//! `current_setting('app.current_tenant')` plus row-level security (6.0+); the generated
//! `redacted_contents_hash` (7.x). Columns are read from `pg_catalog`, which also says which are
//! generated (never written) and what their defaults are.

use std::collections::BTreeMap;

use tokio_postgres::GenericClient;

use crate::error::ConfigError;

/// `critical_and_site_config`.
pub(crate) const SITE_TABLE: &str = "critical_and_site_config";
/// `settings`.
pub(crate) const SETTINGS_TABLE: &str = "settings";
/// `external_services`.
pub(crate) const EXTSVC_TABLE: &str = "external_services";

/// One column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// GENERATED ALWAYS ... STORED: never written.
    pub generated: bool,
    /// The default expression, if any.
    pub default: Option<String>,
}

/// One table: its columns and whether row-level security is enabled.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub columns: BTreeMap<String, Column>,
    pub rls: bool,
}

impl Table {
    pub fn exists(&self) -> bool {
        !self.columns.is_empty()
    }

    pub fn has(&self, column: &str) -> bool {
        self.columns.contains_key(column)
    }

    /// Whether `column` exists and may be written.
    pub fn writable(&self, column: &str) -> bool {
        self.columns.get(column).is_some_and(|c| !c.generated)
    }

    /// `column` if present (cast to bigint), else `NULL::bigint`.
    pub fn bigint_or_null(&self, column: &str) -> String {
        if self.has(column) {
            format!("{column}::bigint")
        } else {
            "NULL::bigint".into()
        }
    }

    /// ` AND (tenant_id = N OR tenant_id IS NULL)` when the table has tenants.
    pub fn tenant_filter(&self, tenant: i32) -> String {
        if self.has("tenant_id") {
            format!(" AND (tenant_id = {tenant} OR tenant_id IS NULL)")
        } else {
            String::new()
        }
    }
}

/// The three configuration tables.
#[derive(Debug, Clone, Default)]
pub(crate) struct Schema {
    pub site: Table,
    pub settings: Table,
    pub extsvc: Table,
}

impl Schema {
    pub async fn detect(client: &impl GenericClient) -> Result<Schema, ConfigError> {
        let rows = client
            .query(
                "SELECT c.relname::text, a.attname::text, a.attgenerated::text, \
                        pg_get_expr(d.adbin, d.adrelid), c.relrowsecurity \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
                 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
                   AND c.relname::text = ANY($1)",
                &[&vec![SITE_TABLE, SETTINGS_TABLE, EXTSVC_TABLE]],
            )
            .await
            .map_err(ConfigError::query("reading the configuration tables' columns"))?;
        let mut schema = Schema::default();
        for r in rows {
            let table: String = r.get(0);
            let column: String = r.get(1);
            let generated: Option<String> = r.get(2);
            let default: Option<String> = r.get(3);
            let rls: bool = r.get(4);
            let t = match table.as_str() {
                SITE_TABLE => &mut schema.site,
                SETTINGS_TABLE => &mut schema.settings,
                _ => &mut schema.extsvc,
            };
            t.rls = rls;
            t.columns.insert(
                column,
                Column {
                    generated: generated.is_some_and(|g| !g.is_empty()),
                    default,
                },
            );
        }
        Ok(schema)
    }

    /// Whether the session must name a tenant: a `tenant_id` default reads
    /// `app.current_tenant` (it errors when the setting is undefined) or row-level security
    /// filters by it.
    pub fn needs_tenant(&self) -> bool {
        [&self.site, &self.settings, &self.extsvc].iter().any(|t| {
            t.rls
                || t.columns
                    .get("tenant_id")
                    .and_then(|c| c.default.as_deref())
                    .is_some_and(|d| d.contains("app.current_tenant"))
        })
    }

    /// Fails naming the first missing table or column.
    pub fn require(&self, database: &str, table: &str, columns: &[&str]) -> Result<(), ConfigError> {
        let t = match table {
            SITE_TABLE => &self.site,
            SETTINGS_TABLE => &self.settings,
            _ => &self.extsvc,
        };
        let missing = if !t.exists() {
            Some(format!("table {table}"))
        } else {
            columns
                .iter()
                .find(|c| !t.writable(c))
                .map(|c| format!("column {table}.{c}"))
        };
        match missing {
            Some(what) => Err(ConfigError::Schema {
                database: database.to_owned(),
                what,
            }),
            None => Ok(()),
        }
    }
}

/// Inside a transaction: sets `app.current_tenant` (transaction-local) to `tenant` unless the
/// session already names one, so `tenant_id` defaults evaluate and row-level security policies
/// (`tenant_id = current_setting('app.current_tenant')`) match the instance's rows.
///
/// `SET row_security = off` is deliberately not used: it does not bypass policies, it makes any
/// query a policy would filter fail for roles that are not the table owner. Table owners (the
/// `sg` role of standard deployments) bypass the policies anyway, since they are ENABLEd, not
/// FORCEd.
pub(crate) async fn set_tenant(
    client: &impl GenericClient,
    schema: &Schema,
    tenant: i32,
) -> Result<(), ConfigError> {
    if !schema.needs_tenant() {
        return Ok(());
    }
    client
        .execute(
            "SELECT set_config('app.current_tenant', $1, true) \
             WHERE coalesce(current_setting('app.current_tenant', true), '') = ''",
            &[&tenant.to_string()],
        )
        .await
        .map_err(ConfigError::query("setting app.current_tenant"))?;
    Ok(())
}
