//! Refuses schemas holding objects the extractor cannot recreate, so nothing is silently lost.
//! Objects that belong to an extension, or are internal parts of another object (a range
//! type's multirange casts), are fine: their owner recreates them.

use super::catalog::{get, Ctx};
use crate::error::PgError;

/// Errors with [`PgError::UnsupportedObject`] naming the first unsupported object found.
pub(crate) async fn check(ctx: &Ctx<'_>) -> Result<(), PgError> {
    const CTX: &str = "looking for unsupported objects";
    // (kind, catalog, alias, name expression, FROM/WHERE tail; `$1` = dumped namespaces)
    let in_schema: &[(&str, &str, &str, &str, &str)] = &[
        ("foreign table", "pg_class", "c", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = c.relnamespace), c.relname)",
         "c.relkind = 'f' AND c.relnamespace = ANY($1)"),
        ("typed table (CREATE TABLE OF type)", "pg_class", "c", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = c.relnamespace), c.relname)",
         "c.relkind IN ('r', 'p') AND c.reloftype <> 0 AND c.relnamespace = ANY($1)"),
        ("table with a non-heap access method", "pg_class", "c", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = c.relnamespace), c.relname)",
         "c.relkind = 'r' AND c.relnamespace = ANY($1) AND c.relam <> 0 AND \
          (SELECT amname FROM pg_catalog.pg_am WHERE oid = c.relam) <> 'heap'"),
        ("base type", "pg_type", "t", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = t.typnamespace), t.typname)",
         "t.typtype IN ('b', 'p') AND t.typnamespace = ANY($1) AND NOT EXISTS \
          (SELECT 1 FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)"),
        ("range type with a canonical function", "pg_type", "t", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = t.typnamespace), t.typname)",
         "t.typtype = 'r' AND t.typnamespace = ANY($1) AND EXISTS \
          (SELECT 1 FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid AND r.rngcanonical <> 0)"),
        ("ordered-set aggregate", "pg_proc", "p", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = p.pronamespace), p.proname)",
         "p.prokind = 'a' AND p.pronamespace = ANY($1) AND EXISTS \
          (SELECT 1 FROM pg_catalog.pg_aggregate a WHERE a.aggfnoid = p.oid AND a.aggkind <> 'n')"),
        ("operator", "pg_operator", "o", "pg_catalog.format('%I.%s', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = o.oprnamespace), o.oprname)",
         "o.oprnamespace = ANY($1)"),
        ("operator class", "pg_opclass", "o", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = o.opcnamespace), o.opcname)",
         "o.opcnamespace = ANY($1)"),
        ("operator family", "pg_opfamily", "o", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = o.opfnamespace), o.opfname)",
         "o.opfnamespace = ANY($1)"),
        ("collation", "pg_collation", "o", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = o.collnamespace), o.collname)",
         "o.collnamespace = ANY($1)"),
        ("conversion", "pg_conversion", "o", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = o.connamespace), o.conname)",
         "o.connamespace = ANY($1)"),
        ("text search configuration", "pg_ts_config", "o", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = o.cfgnamespace), o.cfgname)",
         "o.cfgnamespace = ANY($1)"),
        ("text search dictionary", "pg_ts_dict", "o", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = o.dictnamespace), o.dictname)",
         "o.dictnamespace = ANY($1)"),
        ("text search parser", "pg_ts_parser", "o", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = o.prsnamespace), o.prsname)",
         "o.prsnamespace = ANY($1)"),
        ("text search template", "pg_ts_template", "o", "pg_catalog.format('%I.%I', (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = o.tmplnamespace), o.tmplname)",
         "o.tmplnamespace = ANY($1)"),
        // Database-wide objects: their presence changes what the schema means.
        ("event trigger", "pg_event_trigger", "o", "pg_catalog.quote_ident(o.evtname)", "cardinality($1) >= 0"),
        ("foreign-data wrapper", "pg_foreign_data_wrapper", "o", "pg_catalog.quote_ident(o.fdwname)", "cardinality($1) >= 0"),
        ("foreign server", "pg_foreign_server", "o", "pg_catalog.quote_ident(o.srvname)", "cardinality($1) >= 0"),
        ("publication", "pg_publication", "o", "pg_catalog.quote_ident(o.pubname)", "cardinality($1) >= 0"),
        ("cast", "pg_cast", "o",
         "pg_catalog.format('(%s AS %s)', pg_catalog.format_type(o.castsource, NULL), pg_catalog.format_type(o.casttarget, NULL))",
         "o.oid >= 16384 AND cardinality($1) >= 0"),
        ("transform", "pg_transform", "o",
         "pg_catalog.format('FOR %s LANGUAGE %s', pg_catalog.format_type(o.trftype, NULL), o.trflang)",
         "o.oid >= 16384 AND cardinality($1) >= 0"),
        ("procedural language", "pg_language", "o", "pg_catalog.quote_ident(o.lanname)",
         "o.oid >= 16384 AND o.lanname <> 'plpgsql' AND cardinality($1) >= 0"),
        ("access method", "pg_am", "o", "pg_catalog.quote_ident(o.amname)", "o.oid >= 16384 AND cardinality($1) >= 0"),
        ("large object", "pg_largeobject_metadata", "o", "o.oid::text", "cardinality($1) >= 0"),
        ("default privileges (ALTER DEFAULT PRIVILEGES)", "pg_default_acl", "o",
         "pg_catalog.pg_get_userbyid(o.defaclrole)", "cardinality($1) >= 0"),
    ];
    let mut parts: Vec<String> = in_schema
        .iter()
        .map(|(kind, cat, alias, name, cond)| {
            format!(
                "(SELECT '{kind}'::text, {name}::text FROM pg_catalog.{cat} {alias} \
                  WHERE {cond} AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE \
                  e.classid = 'pg_catalog.{cat}'::pg_catalog.regclass AND e.objid = {alias}.oid \
                  AND e.deptype IN ('e', 'i')))"
            )
        })
        .collect();
    // Subscriptions never belong to an extension, and before 13 a role without superuser may
    // not read pg_subscription.oid (the column grant lacks it): no pg_depend check.
    parts.push(
        "(SELECT 'subscription'::text, pg_catalog.quote_ident(o.subname)::text \
          FROM pg_catalog.pg_subscription o WHERE o.subdbid = (SELECT oid FROM \
          pg_catalog.pg_database WHERE datname = current_database()) AND cardinality($1) >= 0)"
            .to_string(),
    );
    let q = format!(
        "SELECT * FROM ({}) u ORDER BY 1, 2 LIMIT 1",
        parts.join(" UNION ALL ")
    );
    if let Some(r) = ctx.query_nsp(CTX, &q).await?.first() {
        return Err(PgError::UnsupportedObject {
            kind: get(r, 0, CTX)?,
            name: get(r, 1, CTX)?,
        });
    }
    Ok(())
}
