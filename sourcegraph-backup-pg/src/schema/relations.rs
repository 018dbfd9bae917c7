//! Views and materialized views.

use super::catalog::{
    acl_json, get, not_ext, object, parse_acl, with_options, Ctx, PG_CLASS, PG_REWRITE, PG_TYPE,
};
use super::tables::{column_rows, relation_comments};
use super::ObjectKind;
use crate::error::PgError;

/// Views (with their reloptions, e.g. `security_invoker`) and materialized views (created
/// `WITH NO DATA`, refreshed in post-data when the source was populated).
pub(crate) async fn views(ctx: &mut Ctx<'_>) -> Result<(), PgError> {
    const CTX: &str = "reading views";
    let q = format!(
        "SELECT c.oid, n.nspname, c.relname, pg_catalog.format('%I.%I', n.nspname, c.relname), \
                c.relkind::text, coalesce(c.reloptions, '{{}}'::text[]), \
                pg_catalog.pg_get_viewdef(c.oid), c.relispopulated, \
                pg_catalog.pg_get_userbyid(c.relowner), {acl} AS acl, c.reltype, \
                (SELECT r.oid FROM pg_catalog.pg_rewrite r WHERE r.ev_class = c.oid \
                 AND r.rulename = '_RETURN'), \
                (SELECT am.amname::text FROM pg_catalog.pg_am am WHERE am.oid = c.relam \
                 AND am.amname <> 'heap') \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('v', 'm') AND c.relnamespace = ANY($1) AND {ne} \
         ORDER BY n.nspname, c.relname",
        acl = acl_json("c.relacl", "c.relowner"),
        ne = not_ext("pg_class", "c"),
    );
    let rows = ctx.query_nsp(CTX, &q).await?;
    let relids: Vec<u32> = rows.iter().map(|r| get(r, 0, CTX)).collect::<Result<_, _>>()?;
    let columns = column_rows(ctx, &relids).await?;
    for r in &rows {
        let oid: u32 = get(r, 0, CTX)?;
        let schema: String = get(r, 1, CTX)?;
        let name: String = get(r, 2, CTX)?;
        let qname: String = get(r, 3, CTX)?;
        let materialized = get::<String, _>(r, 4, CTX)? == "m";
        let reloptions: Vec<String> = get(r, 5, CTX)?;
        let body: String = get(r, 6, CTX)?;
        let body = body.trim().trim_end_matches(';').trim_end();
        let (kind, word) = if materialized {
            (ObjectKind::MaterializedView, "MATERIALIZED VIEW")
        } else {
            (ObjectKind::View, "VIEW")
        };
        let identity = format!("table {qname}");
        let mut o = object(kind, &schema, &name, identity.clone());
        if reloptions.iter().any(|opt| opt.starts_with("security_invoker=")) {
            o.min_server_version = 150000;
        }
        let am = match get::<Option<String>, _>(r, 12, CTX)? {
            Some(am) if materialized => format!(" USING {am}"),
            _ => String::new(),
        };
        let tail = if materialized { "\n  WITH NO DATA" } else { "" };
        let mut sql = format!(
            "CREATE {word} {qname}{am}{} AS\n{body}{tail};\n",
            with_options(&reloptions)
        );
        let view_cols: Vec<_> = columns.iter().filter(|c| c.relid == oid).collect();
        for c in &view_cols {
            if let (Some(d), false) = (&c.default, materialized) {
                sql += &format!("ALTER VIEW {qname} ALTER COLUMN {} SET DEFAULT {d};\n", c.qname);
            }
        }
        sql += &relation_comments(
            ctx,
            oid,
            &format!("{word} {qname}"),
            &qname,
            view_cols.iter().copied(),
        );
        o.sql = sql;
        o.owner = Some(get(r, 8, CTX)?);
        o.acl = parse_acl(r, "acl", CTX)?;
        o.alter_target = Some(format!("{word} {qname}"));
        o.grant_target = Some(format!("TABLE {qname}"));
        ctx.register(PG_TYPE, get(r, 10, CTX)?, &identity);
        if let Some(rule) = get::<Option<u32>, _>(r, 11, CTX)? {
            ctx.register(PG_REWRITE, rule, &identity);
        }
        ctx.push(PG_CLASS, oid, o);
        if materialized && get::<bool, _>(r, 7, CTX)? {
            let mut refresh = object(
                ObjectKind::MaterializedViewRefresh,
                &schema,
                &name,
                format!("refresh {qname}"),
            );
            refresh.sql = format!("REFRESH MATERIALIZED VIEW {qname};\n");
            refresh.table = Some(identity.clone());
            refresh.depends_on = vec![identity];
            ctx.objects.push(refresh);
        }
    }
    Ok(())
}
