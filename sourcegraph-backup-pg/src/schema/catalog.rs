//! Shared extraction state: the dumped namespaces, the objects found so far, the map from
//! catalog rows to object identities (for `pg_depend`), and comments.

use std::collections::{BTreeSet, HashMap};

use postgres_types::{FromSql, ToSql};
use tokio_postgres::{Client, Row};

use super::{AclEntry, ExtractOptions, ObjectKind, SchemaObject, Section};
use crate::error::PgError;
pub(crate) use crate::sql::get;
use crate::sql::{query_err, quote_literal};

// Fixed OIDs of the system catalogs (identical on every major version).
pub(crate) const PG_CLASS: u32 = 1259;
pub(crate) const PG_TYPE: u32 = 1247;
pub(crate) const PG_PROC: u32 = 1255;
pub(crate) const PG_CONSTRAINT: u32 = 2606;
pub(crate) const PG_NAMESPACE: u32 = 2615;
pub(crate) const PG_EXTENSION: u32 = 3079;
pub(crate) const PG_TRIGGER: u32 = 2620;
pub(crate) const PG_REWRITE: u32 = 2618;
pub(crate) const PG_POLICY: u32 = 3256;
pub(crate) const PG_ATTRDEF: u32 = 2604;
pub(crate) const PG_STATISTIC_EXT: u32 = 3381;

/// Runs a query, naming `context` in the error.
pub(crate) async fn rows(
    client: &Client,
    context: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, PgError> {
    client.query(sql, params).await.map_err(query_err(context))
}

/// Runs a `SELECT` for its side effect (e.g. `set_config`).
pub(crate) async fn exec_select(
    client: &Client,
    context: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<(), PgError> {
    rows(client, context, sql, params).await.map(|_| ())
}

/// Runs a query returning one value.
pub(crate) async fn query_one<T>(client: &Client, context: &str, sql: &str) -> Result<T, PgError>
where
    T: for<'a> FromSql<'a>,
{
    let row = client.query_one(sql, &[]).await.map_err(query_err(context))?;
    get(&row, 0, context)
}

/// SQL condition: the row `alias.oid` of catalog `catalog` does not belong to an extension.
pub(crate) fn not_ext(catalog: &str, alias: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = \
         'pg_catalog.{catalog}'::pg_catalog.regclass AND e.objid = {alias}.oid AND e.deptype = 'e')"
    )
}

/// SQL expression: the ACL entries of `acl` not held by `owner`, as a JSON array.
pub(crate) fn acl_json(acl: &str, owner: &str) -> String {
    format!(
        "(SELECT coalesce(json_agg(json_build_object('grantee', CASE WHEN a.grantee = 0 THEN NULL \
         ELSE pg_catalog.pg_get_userbyid(a.grantee) END, 'privilege', a.privilege_type, \
         'grantable', a.is_grantable) ORDER BY a.grantee, a.privilege_type), '[]'::json) \
         FROM pg_catalog.aclexplode({acl}) a WHERE a.grantee <> {owner})"
    )
}

/// Parses the JSON produced by [`acl_json`].
pub(crate) fn parse_acl(row: &Row, col: &str, context: &str) -> Result<Vec<AclEntry>, PgError> {
    let value: serde_json::Value = get(row, col, context)?;
    let mut out = Vec::new();
    for item in value.as_array().map(Vec::as_slice).unwrap_or_default() {
        out.push(AclEntry {
            grantee: item.get("grantee").and_then(|g| g.as_str()).map(str::to_string),
            privilege: item
                .get("privilege")
                .and_then(|p| p.as_str())
                .unwrap_or_default()
                .to_string(),
            grantable: item.get("grantable").and_then(|g| g.as_bool()).unwrap_or(false),
        });
    }
    Ok(out)
}

/// Extraction state.
pub(crate) struct Ctx<'a> {
    pub client: &'a Client,
    /// `server_version_num` of the source.
    pub version: i32,
    /// OIDs of the dumped namespaces.
    pub nsp: Vec<u32>,
    /// Objects found so far.
    pub objects: Vec<SchemaObject>,
    /// (catalog oid, row oid) → identity of the object that recreates that row.
    pub registry: HashMap<(u32, u32), String>,
    /// (catalog oid, row oid, sub id) → comment, already quoted as a literal.
    comments: HashMap<(u32, u32, i32), String>,
    /// Extra edges (object, prerequisite) that `pg_depend` does not record.
    pub extra_deps: Vec<(String, String)>,
    /// Identities of sequences (their `a` edges to tables are the `OWNED BY` link).
    pub sequence_ids: BTreeSet<String>,
}

impl<'a> Ctx<'a> {
    pub(crate) async fn new(client: &'a Client, opts: &ExtractOptions) -> Result<Self, PgError> {
        let version: i32 = query_one::<String>(
            client,
            "reading server_version_num",
            "SELECT current_setting('server_version_num')",
        )
        .await?
        .parse()
        .map_err(|_| PgError::SchemaCatalog {
            context: "reading server_version_num".into(),
            reason: "not a number".into(),
        })?;
        let nsp_rows = rows(
            client,
            "listing schemas",
            "SELECT n.oid FROM pg_catalog.pg_namespace n \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp' \
               AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[])) \
               AND NOT (n.nspname = ANY($2::text[])) \
             ORDER BY n.nspname",
            &[&opts.include_schemas, &opts.exclude_schemas],
        )
        .await?;
        let nsp = nsp_rows
            .iter()
            .map(|r| get::<u32, _>(r, 0, "listing schemas"))
            .collect::<Result<Vec<_>, _>>()?;
        let comment_rows = rows(
            client,
            "reading comments",
            "SELECT classoid, objoid, objsubid, pg_catalog.quote_literal(description) \
             FROM pg_catalog.pg_description WHERE objoid >= 16384",
            &[],
        )
        .await?;
        let mut comments = HashMap::new();
        for r in &comment_rows {
            comments.insert(
                (
                    get(r, 0, "reading comments")?,
                    get(r, 1, "reading comments")?,
                    get(r, 2, "reading comments")?,
                ),
                get(r, 3, "reading comments")?,
            );
        }
        Ok(Ctx {
            client,
            version,
            nsp,
            objects: Vec::new(),
            registry: HashMap::new(),
            comments,
            extra_deps: Vec::new(),
            sequence_ids: BTreeSet::new(),
        })
    }

    /// Runs a query with the dumped namespace OIDs as `$1`.
    pub(crate) async fn query_nsp(&self, context: &str, sql: &str) -> Result<Vec<Row>, PgError> {
        rows(self.client, context, sql, &[&self.nsp]).await
    }

    /// `COMMENT ON {target} IS '...';` followed by a newline, or nothing.
    pub(crate) fn comment(&self, catalog: u32, oid: u32, sub: i32, target: &str) -> String {
        match self.comments.get(&(catalog, oid, sub)) {
            Some(lit) => format!("COMMENT ON {target} IS {lit};\n"),
            None => String::new(),
        }
    }

    /// Maps a catalog row to the object that recreates it.
    pub(crate) fn register(&mut self, catalog: u32, oid: u32, identity: &str) {
        self.registry
            .entry((catalog, oid))
            .or_insert_with(|| identity.to_string());
    }

    /// Adds an object and maps its main catalog row to it.
    pub(crate) fn push(&mut self, catalog: u32, oid: u32, obj: SchemaObject) {
        self.register(catalog, oid, &obj.identity);
        if obj.kind == ObjectKind::Sequence {
            self.sequence_ids.insert(obj.identity.clone());
        }
        self.objects.push(obj);
    }

    /// Fills every object's `depends_on` from `pg_depend` and the extra edges.
    pub(crate) async fn resolve_dependencies(&mut self) -> Result<(), PgError> {
        const CTX: &str = "reading pg_depend";
        let ext_rows = rows(
            self.client,
            CTX,
            "SELECT d.classid, d.objid, d.refobjid FROM pg_catalog.pg_depend d \
             WHERE d.deptype = 'e' AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass",
            &[],
        )
        .await?;
        for r in &ext_rows {
            let ext_oid: u32 = get(r, 2, CTX)?;
            if let Some(ext_id) = self.registry.get(&(PG_EXTENSION, ext_oid)).cloned() {
                self.register(get(r, 0, CTX)?, get(r, 1, CTX)?, &ext_id);
            }
        }
        // Array types are recreated with their element type.
        let arrays = rows(
            self.client,
            CTX,
            "SELECT t.oid, t.typarray FROM pg_catalog.pg_type t \
             WHERE t.typarray <> 0 AND t.oid >= 16384",
            &[],
        )
        .await?;
        for r in &arrays {
            let elem: u32 = get(r, 0, CTX)?;
            if let Some(id) = self.registry.get(&(PG_TYPE, elem)).cloned() {
                self.register(PG_TYPE, get(r, 1, CTX)?, &id);
            }
        }
        let dep_rows = rows(
            self.client,
            CTX,
            "SELECT d.classid, d.objid, d.refclassid, d.refobjid, d.deptype::text \
             FROM pg_catalog.pg_depend d \
             WHERE d.deptype IN ('n', 'a') AND d.objid >= 16384 AND d.refobjid >= 16384",
            &[],
        )
        .await?;
        let mut edges: Vec<(String, String)> = std::mem::take(&mut self.extra_deps);
        for r in &dep_rows {
            let obj = self.registry.get(&(get(r, 0, CTX)?, get(r, 1, CTX)?));
            let refd = self.registry.get(&(get(r, 2, CTX)?, get(r, 3, CTX)?));
            let (Some(obj), Some(refd)) = (obj, refd) else {
                continue;
            };
            let deptype: String = get(r, 4, CTX)?;
            // A sequence's auto dependency on a table is its OWNED BY link, restored separately.
            if deptype == "a" && self.sequence_ids.contains(obj) {
                continue;
            }
            if obj != refd {
                edges.push((obj.clone(), refd.clone()));
            }
        }
        let index: HashMap<String, usize> = self
            .objects
            .iter()
            .enumerate()
            .map(|(i, o)| (o.identity.clone(), i))
            .collect();
        for (obj, refd) in edges {
            if let Some(&i) = index.get(&obj) {
                let deps = &mut self.objects[i].depends_on;
                if !deps.contains(&refd) {
                    deps.push(refd);
                }
            }
        }
        for o in &mut self.objects {
            o.depends_on.sort();
        }
        self.promote_keys_needed_before_data();
        Ok(())
    }

    /// A view grouping by a primary key (functional dependency) needs that key when it is
    /// created: such keys move to pre-data, as pg_dump does.
    fn promote_keys_needed_before_data(&mut self) {
        let needed: BTreeSet<String> = self
            .objects
            .iter()
            .filter(|o| o.section == Section::PreData)
            .flat_map(|o| o.depends_on.iter().cloned())
            .collect();
        for o in &mut self.objects {
            if matches!(o.kind, ObjectKind::PrimaryKey | ObjectKind::UniqueConstraint)
                && needed.contains(&o.identity)
            {
                o.section = Section::PreData;
            }
        }
    }
}

/// A blank object of `kind` with the fields every builder sets.
pub(crate) fn object(kind: ObjectKind, schema: &str, name: &str, identity: String) -> SchemaObject {
    SchemaObject {
        kind,
        schema: schema.to_string(),
        name: name.to_string(),
        identity,
        section: kind.section(),
        sql: String::new(),
        depends_on: Vec::new(),
        owner: None,
        acl: Vec::new(),
        alter_target: None,
        grant_target: None,
        min_server_version: 120000,
        table: None,
        roles: Vec::new(),
        roles_at: None,
    }
}

/// Renders `WITH (k='v', ...)` from reloptions (`k=v` strings), or nothing.
pub(crate) fn with_options(reloptions: &[String]) -> String {
    if reloptions.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = reloptions
        .iter()
        .map(|o| match o.split_once('=') {
            Some((k, v)) => format!("{k}={}", quote_literal(v)),
            None => o.clone(),
        })
        .collect();
    format!(" WITH ({})", parts.join(", "))
}
