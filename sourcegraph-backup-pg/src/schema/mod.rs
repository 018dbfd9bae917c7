//! Native schema extractor: reads a database's schema from its catalogs with the server's own
//! deparsers (`pg_get_functiondef`, `pg_get_indexdef`, `pg_get_constraintdef`, ...) and renders
//! DDL that restores it into an empty database of the same or another major version (12..18).
//!
//! The extractor only issues `SELECT`s (plus a transaction-local `search_path` change that it
//! undoes), so it runs inside the caller's `REPEATABLE READ READ ONLY` snapshot transaction.
//! Object kinds it cannot reproduce are refused with [`PgError::UnsupportedObject`], never
//! silently left out; objects that belong to an extension are skipped (the extension
//! recreates them).
//!
//! Supported: extensions (`pg_stat_statements` optional, `plpgsql` implied), schemas (and the
//! comment of `public`), enums, composite types, domains (with checks, NOT VALID ones too),
//! range types (without canonical function), functions, procedures, normal aggregates,
//! sequences (UNLOGGED on 15+), tables (UNLOGGED, partitioned, partitions, inheritance
//! children, identity/generated/collated columns, defaults, reloptions, column statistics
//! targets, storage, options and compression), views (reloptions such as
//! `security_invoker`, column defaults), materialized views (refreshed in post-data), primary /
//! unique / exclusion / foreign-key / check constraints, indexes (partition indexes attached),
//! extended statistics, triggers (enable state), rules, policies, row-level security switches,
//! replica identity, CLUSTER ON, comments, owners and grants (opt-in at render time).
//!
//! Refused ([`PgError::UnsupportedObject`]): foreign tables, servers and wrappers, typed tables,
//! non-heap tables, base and shell types, ordered-set aggregates, operators, operator
//! classes/families, collations, conversions, text search objects, event triggers,
//! publications, subscriptions, casts, transforms, languages and access methods not from an
//! extension, large objects, default privileges.
//!
//! Not carried: column-level grants, revoked default privileges, security labels,
//! tablespaces, per-index-column statistics targets.

mod catalog;
mod constraints;
mod features;
mod functions;
mod ordering;
mod relations;
mod render;
mod tables;
mod triggers;
mod types;
mod unsupported;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::PgError;
use catalog::Ctx;

pub use features::Incompatibility;
pub(crate) use render::mapped_role;
pub use render::{PostDataStep, RenderOptions};

/// Whether Sourcegraph creates this extension only when the server has it (`pg_stat_statements`).
pub(crate) fn is_optional_extension(name: &str) -> bool {
    types::OPTIONAL_EXTENSIONS.contains(&name)
}

/// What to extract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtractOptions {
    /// Only these schemas (names as stored, unquoted). Empty: every non-system schema.
    pub include_schemas: Vec<String>,
    /// Leave these schemas out.
    pub exclude_schemas: Vec<String>,
}

/// Which part of a restore an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Created before the data is loaded.
    PreData,
    /// Created after the data is loaded (constraints, indexes, triggers, policies...).
    PostData,
}

/// The kind of a schema object. The declaration order is the tie-break order of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // the variant names are the documentation
pub enum ObjectKind {
    Extension,
    Schema,
    EnumType,
    CompositeType,
    Domain,
    RangeType,
    Function,
    Procedure,
    Aggregate,
    Sequence,
    Table,
    SequenceOwnedBy,
    View,
    MaterializedView,
    PrimaryKey,
    UniqueConstraint,
    ExclusionConstraint,
    Index,
    IndexAttach,
    CheckConstraint,
    ForeignKey,
    Statistics,
    ReplicaIdentity,
    ClusterOn,
    MaterializedViewRefresh,
    RowSecurity,
    Policy,
    Rule,
    Trigger,
}

impl ObjectKind {
    /// The section of a restore this kind belongs to.
    pub fn section(self) -> Section {
        if self <= ObjectKind::MaterializedView {
            Section::PreData
        } else {
            Section::PostData
        }
    }
}

/// One privilege granted on an object (from its ACL, owner's own entries left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    /// The grantee role; `None` is `PUBLIC`.
    pub grantee: Option<String>,
    /// The privilege, e.g. `SELECT`, `EXECUTE`, `USAGE`.
    pub privilege: String,
    /// Whether it was granted `WITH GRANT OPTION`.
    pub grantable: bool,
}

/// One object of the schema, with the DDL that recreates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaObject {
    /// What it is.
    pub kind: ObjectKind,
    /// Its schema (unquoted); empty for extensions and schemas themselves.
    pub schema: String,
    /// Its name (unquoted).
    pub name: String,
    /// Unique key, e.g. `table public.repo`, `function public.f(integer)`.
    pub identity: String,
    /// Pre-data or post-data.
    pub section: Section,
    /// The DDL (one or more statements, each ending with `;`), comments included.
    pub sql: String,
    /// Identities of objects that must exist first.
    pub depends_on: Vec<String>,
    /// Owning role in the source, if the kind has an owner.
    pub owner: Option<String>,
    /// Privileges granted to roles other than the owner.
    pub acl: Vec<AclEntry>,
    /// How `ALTER ... OWNER TO` names it, e.g. `TABLE public.repo`.
    pub alter_target: Option<String>,
    /// How `GRANT ... ON` names it, e.g. `FUNCTION public.f(integer)`.
    pub grant_target: Option<String>,
    /// The lowest server version (`server_version_num`) that can express it.
    pub min_server_version: i32,
    /// The identity of the table (or materialized view) it belongs to, for post-data objects.
    pub table: Option<String>,
    /// Roles the DDL itself names besides owner and grants: a policy's `TO` list (`None` is
    /// `PUBLIC`). Rendering maps them through the role map; a restore checks they exist.
    #[serde(default)]
    pub roles: Vec<Option<String>>,
    /// Byte offset in `sql` where the rendered list of `roles` starts.
    #[serde(default)]
    pub roles_at: Option<usize>,
}

/// A table of the dumped schema, as the backup copies it (the probe's
/// [`TableStats`](crate::probe::TableStats) is the same table's sizes and row estimate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Schema (unquoted).
    pub schema: String,
    /// Name (unquoted).
    pub name: String,
    /// `"schema"."name"` quoted by the server.
    pub qualified_name: String,
    /// Identity of its [`SchemaObject`].
    pub identity: String,
    /// Columns to list in `COPY` (no generated, no dropped columns), unquoted, in order.
    pub columns_for_copy: Vec<String>,
    /// The same columns quoted by the server.
    pub quoted_columns_for_copy: Vec<String>,
    /// A partitioned table (holds no data itself: copy its leaf partitions).
    pub is_partitioned: bool,
    /// A partition of another table.
    pub is_partition: bool,
    /// Identity of the parent of a partition (or first parent of an inheritance child).
    pub parent: Option<String>,
    /// `p` permanent, `u` unlogged.
    pub relpersistence: String,
    /// Whether it has user triggers (incl. clones of a partitioned parent's triggers).
    pub has_triggers: bool,
    /// Primary key columns (unquoted), empty without one.
    pub primary_key: Vec<String>,
    /// Approximate size on disk (`pg_table_size`).
    pub approx_bytes: i64,
}

/// A sequence whose value is saved and restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceInfo {
    /// Schema (unquoted).
    pub schema: String,
    /// Name (unquoted).
    pub name: String,
    /// `"schema"."name"` quoted by the server.
    pub qualified_name: String,
    /// Whether it backs an identity column (created with its table).
    pub is_identity: bool,
}

/// An installed extension (in a [`SchemaDump`], one with objects in the dumped schemas; in a
/// [`ProbeReport`](crate::probe::ProbeReport), every one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtensionInfo {
    /// `pg_extension.extname`.
    pub name: String,
    /// `pg_extension.extversion`.
    pub version: String,
    /// The schema the extension's objects live in.
    pub schema: String,
}

/// A database schema as read from the catalogs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDump {
    /// `server_version_num` of the source.
    pub server_version_num: i32,
    /// Every object, pre-data then post-data, each section in dependency order.
    pub objects: Vec<SchemaObject>,
    /// Tables (regular and partitioned) in the dumped schemas.
    pub tables: Vec<TableInfo>,
    /// Sequences in the dumped schemas (identity sequences included).
    pub sequences: Vec<SequenceInfo>,
    /// Extensions whose objects live in the dumped schemas (plpgsql left out).
    pub extensions: Vec<ExtensionInfo>,
}

impl SchemaDump {
    /// Objects of a section in dependency order.
    pub fn section(&self, section: Section) -> impl Iterator<Item = &SchemaObject> {
        self.objects.iter().filter(move |o| o.section == section)
    }

    /// Looks up an object by identity.
    pub fn object(&self, identity: &str) -> Option<&SchemaObject> {
        self.objects.iter().find(|o| o.identity == identity)
    }
}

/// Reads the schema of the connected database.
///
/// Runs only `SELECT`s, inside whatever transaction the caller has open; it sets
/// `search_path` to empty for the duration (so every deparsed name is schema-qualified) and
/// restores the previous value before returning.
pub async fn extract_schema(client: &Client, opts: &ExtractOptions) -> Result<SchemaDump, PgError> {
    let previous_path: String = catalog::query_one(
        client,
        "saving search_path",
        "SELECT current_setting('search_path')",
    )
    .await?;
    catalog::exec_select(
        client,
        "clearing search_path",
        "SELECT pg_catalog.set_config('search_path', '', false)",
        &[],
    )
    .await?;
    let result = extract_inner(client, opts).await;
    let restored = catalog::exec_select(
        client,
        "restoring search_path",
        "SELECT pg_catalog.set_config('search_path', $1, false)",
        &[&previous_path],
    )
    .await;
    let dump = result?;
    restored?;
    Ok(dump)
}

async fn extract_inner(client: &Client, opts: &ExtractOptions) -> Result<SchemaDump, PgError> {
    let mut ctx = Ctx::new(client, opts).await?;
    unsupported::check(&ctx).await?;
    let extensions = types::extensions_and_schemas(&mut ctx).await?;
    types::user_types(&mut ctx).await?;
    functions::functions(&mut ctx).await?;
    functions::aggregates(&mut ctx).await?;
    let (tables, sequences) = tables::tables_and_sequences(&mut ctx).await?;
    relations::views(&mut ctx).await?;
    constraints::constraints(&mut ctx).await?;
    constraints::indexes(&mut ctx).await?;
    triggers::triggers_rules_policies(&mut ctx).await?;
    triggers::statistics(&mut ctx).await?;
    ctx.resolve_dependencies().await?;
    ordering::add_implied_edges(&mut ctx.objects);
    let version = ctx.version;
    let objects = ordering::order(ctx.objects);
    Ok(SchemaDump {
        server_version_num: version,
        objects,
        tables,
        sequences,
        extensions,
    })
}
