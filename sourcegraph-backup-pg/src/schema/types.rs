//! Extensions, schemas and user-defined types (enums, composites, domains, ranges).

use super::catalog::{
    acl_json, get, not_ext, object, parse_acl, Ctx, PG_CLASS, PG_CONSTRAINT, PG_EXTENSION, PG_NAMESPACE,
    PG_TYPE,
};
use super::tables::{column_rows, Column};
use super::{ExtensionInfo, ObjectKind};
use crate::error::PgError;
use crate::sql::quote_literal;

/// Extensions that Sourcegraph creates only when available (inside an exception handler).
pub(crate) const OPTIONAL_EXTENSIONS: &[&str] = &["pg_stat_statements"];

/// `statements` in a `DO` block that turns any error into a notice. The dollar-quote tag is
/// one the statements do not contain.
fn optional_block(name: &str, statements: &str) -> String {
    let mut tag = "$optional$".to_string();
    while statements.contains(&tag) {
        tag.insert(tag.len() - 1, '_');
    }
    // RAISE reads `%` in its format as a placeholder: a literal one is written `%%`.
    let message = quote_literal(&format!(
        "optional extension {} is not available: %",
        name.replace('%', "%%")
    ));
    format!(
        "DO {tag}\nBEGIN\n    {statements}EXCEPTION WHEN OTHERS THEN\n    \
         RAISE NOTICE {message}, SQLERRM;\n\
         END\n{tag};\n"
    )
}

/// Extensions with objects in the dumped schemas, and the schemas themselves.
pub(crate) async fn extensions_and_schemas(ctx: &mut Ctx<'_>) -> Result<Vec<ExtensionInfo>, PgError> {
    const CTX: &str = "reading extensions";
    let rows = ctx
        .query_nsp(
            CTX,
            "SELECT x.oid, x.extname, pg_catalog.quote_ident(x.extname), x.extversion, n.nspname, \
                    pg_catalog.quote_ident(n.nspname) \
             FROM pg_catalog.pg_extension x JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace \
             WHERE x.extname <> 'plpgsql' AND x.extnamespace = ANY($1) \
             ORDER BY x.extname",
        )
        .await?;
    let mut infos = Vec::new();
    for r in &rows {
        let oid: u32 = get(r, 0, CTX)?;
        let name: String = get(r, 1, CTX)?;
        let qname: String = get(r, 2, CTX)?;
        let version: String = get(r, 3, CTX)?;
        let schema: String = get(r, 4, CTX)?;
        let qschema: String = get(r, 5, CTX)?;
        let mut o = object(ObjectKind::Extension, "", &name, format!("extension {qname}"));
        // The VERSION clause is added at render time (see RenderOptions::pin_extension_versions).
        o.sql = format!("CREATE EXTENSION IF NOT EXISTS {qname} WITH SCHEMA {qschema};\n");
        o.sql += &ctx.comment(PG_EXTENSION, oid, 0, &format!("EXTENSION {qname}"));
        if OPTIONAL_EXTENSIONS.contains(&name.as_str()) {
            // As Sourcegraph does: created when the server has it (and the role may), skipped
            // otherwise; its comment inside the block, since it needs the extension.
            o.sql = optional_block(&name, &o.sql);
        }
        ctx.push(PG_EXTENSION, oid, o);
        infos.push(ExtensionInfo {
            name,
            version,
            schema,
        });
    }

    const SCTX: &str = "reading schemas";
    let q = format!(
        "SELECT n.oid, n.nspname, pg_catalog.quote_ident(n.nspname), \
                pg_catalog.pg_get_userbyid(n.nspowner), {acl} AS acl \
         FROM pg_catalog.pg_namespace n WHERE n.oid = ANY($1) AND {ne} ORDER BY n.nspname",
        acl = acl_json("n.nspacl", "n.nspowner"),
        ne = not_ext("pg_namespace", "n"),
    );
    for r in &ctx.query_nsp(SCTX, &q).await? {
        let oid: u32 = get(r, 0, SCTX)?;
        let name: String = get(r, 1, SCTX)?;
        let qname: String = get(r, 2, SCTX)?;
        let mut o = object(ObjectKind::Schema, "", &name, format!("schema {qname}"));
        // `public` exists in every new database; only its comment is carried over.
        if name != "public" {
            o.sql = format!("CREATE SCHEMA {qname};\n");
            o.owner = Some(get(r, 3, SCTX)?);
            o.acl = parse_acl(r, "acl", SCTX)?;
            o.alter_target = Some(format!("SCHEMA {qname}"));
            o.grant_target = Some(format!("SCHEMA {qname}"));
        }
        o.sql += &ctx.comment(PG_NAMESPACE, oid, 0, &format!("SCHEMA {qname}"));
        ctx.push(PG_NAMESPACE, oid, o);
    }
    Ok(infos)
}

/// Enums, standalone composite types, domains and range types.
pub(crate) async fn user_types(ctx: &mut Ctx<'_>) -> Result<(), PgError> {
    const CTX: &str = "reading types";
    let multirange = if ctx.version >= 140000 {
        "(SELECT pg_catalog.format('%I.%I', mn.nspname, mt.typname) FROM pg_catalog.pg_type mt \
          JOIN pg_catalog.pg_namespace mn ON mn.oid = mt.typnamespace WHERE mt.oid = rg.rngmultitypid), \
         (SELECT mt.typname::text FROM pg_catalog.pg_type mt WHERE mt.oid = rg.rngmultitypid)"
    } else {
        "NULL::text, NULL::text"
    };
    let q = format!(
        "SELECT t.oid, n.nspname, t.typname, \
                pg_catalog.format('%I.%I', n.nspname, t.typname) AS qname, t.typtype::text, \
                pg_catalog.pg_get_userbyid(t.typowner), {acl} AS acl, t.typrelid, \
                ARRAY(SELECT pg_catalog.quote_literal(e.enumlabel) FROM pg_catalog.pg_enum e \
                      WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) AS labels, \
                pg_catalog.format_type(t.typbasetype, t.typtypmod) AS basetype, t.typnotnull, \
                pg_catalog.pg_get_expr(t.typdefaultbin, 0) AS typdefault, \
                CASE WHEN t.typtype = 'd' AND t.typcollation <> bt.typcollation THEN \
                  (SELECT pg_catalog.format('%I.%I', cn.nspname, co.collname) \
                   FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn \
                   ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END AS dcoll, \
                pg_catalog.format_type(rg.rngsubtype, NULL) AS subtype, \
                CASE WHEN rg.rngsubopc <> 0 AND NOT oc.opcdefault THEN \
                  pg_catalog.format('%I.%I', ocn.nspname, oc.opcname) END AS subopc, \
                CASE WHEN rg.rngcollation <> 0 AND rg.rngcollation <> st.typcollation THEN \
                  (SELECT pg_catalog.format('%I.%I', cn.nspname, co.collname) \
                   FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn \
                   ON cn.oid = co.collnamespace WHERE co.oid = rg.rngcollation) END AS rcoll, \
                CASE WHEN rg.rngsubdiff <> 0 THEN rg.rngsubdiff::pg_catalog.regproc::text END, \
                {multirange} \
         FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
         LEFT JOIN pg_catalog.pg_type bt ON bt.oid = t.typbasetype \
         LEFT JOIN pg_catalog.pg_range rg ON rg.rngtypid = t.oid \
         LEFT JOIN pg_catalog.pg_type st ON st.oid = rg.rngsubtype \
         LEFT JOIN pg_catalog.pg_opclass oc ON oc.oid = rg.rngsubopc \
         LEFT JOIN pg_catalog.pg_namespace ocn ON ocn.oid = oc.opcnamespace \
         WHERE t.typnamespace = ANY($1) AND {ne} \
           AND (t.typtype IN ('e', 'd', 'r') \
                OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c \
                                         WHERE c.oid = t.typrelid) = 'c')) \
         ORDER BY n.nspname, t.typname",
        acl = acl_json("t.typacl", "t.typowner"),
        ne = not_ext("pg_type", "t"),
    );
    let rows = ctx.query_nsp(CTX, &q).await?;
    let composite_oids: Vec<u32> = rows
        .iter()
        .map(|r| get::<u32, _>(r, 7, CTX))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|o| *o != 0)
        .collect();
    let columns = column_rows(ctx, &composite_oids).await?;
    let domain_checks = domain_constraints(ctx).await?;
    for r in &rows {
        let oid: u32 = get(r, 0, CTX)?;
        let schema: String = get(r, 1, CTX)?;
        let name: String = get(r, 2, CTX)?;
        let qname: String = get(r, 3, CTX)?;
        let typtype: String = get(r, 4, CTX)?;
        let (kind, word) = match typtype.as_str() {
            "e" => (ObjectKind::EnumType, "TYPE"),
            "c" => (ObjectKind::CompositeType, "TYPE"),
            "d" => (ObjectKind::Domain, "DOMAIN"),
            _ => (ObjectKind::RangeType, "TYPE"),
        };
        let mut o = object(kind, &schema, &name, format!("type {qname}"));
        o.owner = Some(get(r, 5, CTX)?);
        o.acl = parse_acl(r, "acl", CTX)?;
        o.alter_target = Some(format!("{word} {qname}"));
        o.grant_target = Some(format!("{word} {qname}"));
        match kind {
            ObjectKind::EnumType => {
                let labels: Vec<String> = get(r, 8, CTX)?;
                o.sql = format!("CREATE TYPE {qname} AS ENUM ({});\n", labels.join(", "));
            }
            ObjectKind::CompositeType => {
                let relid: u32 = get(r, 7, CTX)?;
                let attrs: Vec<&Column> = columns.iter().filter(|c| c.relid == relid).collect();
                let body: Vec<String> = attrs
                    .iter()
                    .map(|c| {
                        let coll = c.collation.as_deref().map(|c| format!(" COLLATE {c}"));
                        format!("    {} {}{}", c.qname, c.type_name, coll.unwrap_or_default())
                    })
                    .collect();
                o.sql = format!("CREATE TYPE {qname} AS (\n{}\n);\n", body.join(",\n"));
                for c in &attrs {
                    o.sql += &ctx.comment(
                        PG_CLASS,
                        relid,
                        i32::from(c.attnum),
                        &format!("COLUMN {qname}.{}", c.qname),
                    );
                }
                ctx.register(PG_CLASS, relid, &o.identity);
            }
            ObjectKind::Domain => {
                let base: String = get(r, 9, CTX)?;
                let mut sql = format!("CREATE DOMAIN {qname} AS {base}");
                if let Some(coll) = get::<Option<String>, _>(r, "dcoll", CTX)? {
                    sql += &format!(" COLLATE {coll}");
                }
                if let Some(def) = get::<Option<String>, _>(r, "typdefault", CTX)? {
                    sql += &format!(" DEFAULT {def}");
                }
                if get::<bool, _>(r, 10, CTX)? {
                    sql += " NOT NULL";
                }
                let mut later = String::new();
                for (con_oid, con_name, def, valid) in
                    domain_checks.iter().filter(|d| d.0 == oid).map(|d| &d.1)
                {
                    if *valid {
                        sql += &format!("\n    CONSTRAINT {con_name} {def}");
                    } else {
                        later += &format!("ALTER DOMAIN {qname} ADD CONSTRAINT {con_name} {def};\n");
                    }
                    later += &ctx.comment(
                        PG_CONSTRAINT,
                        *con_oid,
                        0,
                        &format!("CONSTRAINT {con_name} ON DOMAIN {qname}"),
                    );
                    ctx.register(PG_CONSTRAINT, *con_oid, &o.identity);
                }
                o.sql = format!("{sql};\n{later}");
            }
            _ => {
                let mut parts = vec![format!("SUBTYPE = {}", get::<String, _>(r, "subtype", CTX)?)];
                if let Some(opc) = get::<Option<String>, _>(r, "subopc", CTX)? {
                    parts.push(format!("SUBTYPE_OPCLASS = {opc}"));
                }
                if let Some(coll) = get::<Option<String>, _>(r, "rcoll", CTX)? {
                    parts.push(format!("COLLATION = {coll}"));
                }
                if let Some(diff) = get::<Option<String>, _>(r, 16, CTX)? {
                    parts.push(format!("SUBTYPE_DIFF = {diff}"));
                }
                if let (Some(mq), Some(mname)) = (
                    get::<Option<String>, _>(r, 17, CTX)?,
                    get::<Option<String>, _>(r, 18, CTX)?,
                ) {
                    if mname != default_multirange_name(&name) {
                        parts.push(format!("MULTIRANGE_TYPE_NAME = {mq}"));
                        o.min_server_version = 140000;
                    }
                }
                o.sql = format!(
                    "CREATE TYPE {qname} AS RANGE (\n    {}\n);\n",
                    parts.join(",\n    ")
                );
            }
        }
        o.sql += &ctx.comment(PG_TYPE, oid, 0, &format!("{word} {qname}"));
        ctx.push(PG_TYPE, oid, o);
    }
    Ok(())
}

/// The name PostgreSQL 14+ gives a range type's multirange by default.
fn default_multirange_name(range: &str) -> String {
    match range.find("range") {
        Some(i) => format!("{}multirange{}", &range[..i], &range[i + 5..]),
        None => format!("{range}_multirange"),
    }
}

type DomainCheck = (u32, (u32, String, String, bool));

/// CHECK constraints of domains: (domain oid, (constraint oid, quoted name, def, validated)).
async fn domain_constraints(ctx: &Ctx<'_>) -> Result<Vec<DomainCheck>, PgError> {
    const CTX: &str = "reading domain constraints";
    let rows = ctx
        .query_nsp(
            CTX,
            "SELECT co.contypid, co.oid, pg_catalog.quote_ident(co.conname), \
                    pg_catalog.pg_get_constraintdef(co.oid), co.convalidated \
             FROM pg_catalog.pg_constraint co \
             WHERE co.contypid <> 0 AND co.contype = 'c' AND co.connamespace = ANY($1) \
             ORDER BY co.contypid, co.conname",
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                get(r, 0, CTX)?,
                (get(r, 1, CTX)?, get(r, 2, CTX)?, get(r, 3, CTX)?, get(r, 4, CTX)?),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn multirange_default_names_match_postgres() {
        assert_eq!(super::default_multirange_name("floatrange"), "floatmultirange");
        assert_eq!(super::default_multirange_name("tsrange_x"), "tsmultirange_x");
        assert_eq!(super::default_multirange_name("period"), "period_multirange");
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn optional_block_holds_the_comment_and_picks_an_unused_tag() {
        let sql = "CREATE EXTENSION IF NOT EXISTS x WITH SCHEMA public;\n\
                   COMMENT ON EXTENSION x IS 'has $optional$ in it';\n";
        let block = super::optional_block("x", sql);
        assert!(block.starts_with("DO $optional_$\n"), "{block}");
        assert!(block.ends_with("END\n$optional_$;\n"), "{block}");
        let comment = block.find("COMMENT ON EXTENSION").unwrap();
        assert!(comment < block.find("EXCEPTION").unwrap(), "{block}");
    }

    #[test]
    fn optional_blocks_quote_the_name_in_the_notice() {
        assert_eq!(
            super::optional_block("it's 100%", "CREATE EXTENSION x;\n"),
            "DO $optional$\nBEGIN\n    CREATE EXTENSION x;\nEXCEPTION WHEN OTHERS THEN\n    \
             RAISE NOTICE 'optional extension it''s 100%% is not available: %', SQLERRM;\n\
             END\n$optional$;\n"
        );
    }
}
