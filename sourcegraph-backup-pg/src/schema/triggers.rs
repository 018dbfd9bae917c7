//! Triggers, rules, row-level security (policies and the table switches), table replica
//! identity and extended statistics: all post-data.

use std::collections::BTreeMap;

use super::catalog::{
    get, not_ext, object, Ctx, PG_CONSTRAINT, PG_POLICY, PG_REWRITE, PG_STATISTIC_EXT, PG_TRIGGER,
};
use super::render::role_list;
use super::ObjectKind;
use crate::error::PgError;

/// Triggers, rules, policies and the per-table RLS / replica identity switches.
pub(crate) async fn triggers_rules_policies(ctx: &mut Ctx<'_>) -> Result<(), PgError> {
    const CTX: &str = "reading triggers";
    // Before 13, triggers cloned onto partitions are marked internal; from 13 on they carry
    // tgparentid.
    let cloned = if ctx.version >= 130000 {
        "AND t.tgparentid = 0"
    } else {
        ""
    };
    let q = format!(
        "SELECT t.oid, n.nspname, t.tgname, pg_catalog.quote_ident(t.tgname), \
                pg_catalog.format('%I.%I', n.nspname, c.relname), \
                pg_catalog.pg_get_triggerdef(t.oid, false), t.tgenabled::text, t.tgconstraint \
         FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relnamespace = ANY($1) AND NOT t.tgisinternal {cloned} AND {ne} \
         ORDER BY n.nspname, c.relname, t.tgname",
        ne = not_ext("pg_class", "c"),
    );
    for r in &ctx.query_nsp(CTX, &q).await? {
        let oid: u32 = get(r, 0, CTX)?;
        let qtg: String = get(r, 3, CTX)?;
        let tq: String = get(r, 4, CTX)?;
        let def: String = get(r, 5, CTX)?;
        let table_id = format!("table {tq}");
        let mut o = object(
            ObjectKind::Trigger,
            &get::<String, _>(r, 1, CTX)?,
            &get::<String, _>(r, 2, CTX)?,
            format!("trigger {tq}.{qtg}"),
        );
        o.sql = format!("{def};\n");
        match get::<String, _>(r, 6, CTX)?.as_str() {
            "D" => o.sql += &format!("ALTER TABLE {tq} DISABLE TRIGGER {qtg};\n"),
            "R" => o.sql += &format!("ALTER TABLE {tq} ENABLE REPLICA TRIGGER {qtg};\n"),
            "A" => o.sql += &format!("ALTER TABLE {tq} ENABLE ALWAYS TRIGGER {qtg};\n"),
            _ => {}
        }
        o.sql += &ctx.comment(PG_TRIGGER, oid, 0, &format!("TRIGGER {qtg} ON {tq}"));
        o.table = Some(table_id.clone());
        o.depends_on = vec![table_id];
        let constraint: u32 = get(r, 7, CTX)?;
        if constraint != 0 {
            ctx.register(PG_CONSTRAINT, constraint, &o.identity);
        }
        ctx.push(PG_TRIGGER, oid, o);
    }

    const RCTX: &str = "reading rules";
    let q = format!(
        "SELECT r.oid, n.nspname, r.rulename, pg_catalog.quote_ident(r.rulename), \
                pg_catalog.format('%I.%I', n.nspname, c.relname), pg_catalog.pg_get_ruledef(r.oid), \
                r.ev_enabled::text \
         FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relnamespace = ANY($1) AND r.rulename <> '_RETURN' AND {ne} \
         ORDER BY n.nspname, c.relname, r.rulename",
        ne = not_ext("pg_class", "c"),
    );
    for r in &ctx.query_nsp(RCTX, &q).await? {
        let oid: u32 = get(r, 0, RCTX)?;
        let qrule: String = get(r, 3, RCTX)?;
        let tq: String = get(r, 4, RCTX)?;
        let def: String = get(r, 5, RCTX)?;
        let table_id = format!("table {tq}");
        let mut o = object(
            ObjectKind::Rule,
            &get::<String, _>(r, 1, RCTX)?,
            &get::<String, _>(r, 2, RCTX)?,
            format!("rule {tq}.{qrule}"),
        );
        o.sql = format!("{}\n", def.trim_end());
        if get::<String, _>(r, 6, RCTX)? == "D" {
            o.sql += &format!("ALTER TABLE {tq} DISABLE RULE {qrule};\n");
        }
        o.sql += &ctx.comment(PG_REWRITE, oid, 0, &format!("RULE {qrule} ON {tq}"));
        o.table = Some(table_id.clone());
        o.depends_on = vec![table_id];
        ctx.push(PG_REWRITE, oid, o);
    }

    const PCTX: &str = "reading policies";
    let q = format!(
        "SELECT p.oid, n.nspname, p.polname, pg_catalog.quote_ident(p.polname), \
                pg_catalog.format('%I.%I', n.nspname, c.relname), p.polcmd::text, p.polpermissive, \
                ARRAY(SELECT CASE WHEN ro <> 0 THEN pg_catalog.pg_get_userbyid(ro)::text END \
                      FROM unnest(p.polroles) ro ORDER BY 1), \
                pg_catalog.pg_get_expr(p.polqual, p.polrelid), \
                pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) \
         FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relnamespace = ANY($1) AND {ne} \
         ORDER BY n.nspname, c.relname, p.polname",
        ne = not_ext("pg_class", "c"),
    );
    for r in &ctx.query_nsp(PCTX, &q).await? {
        let oid: u32 = get(r, 0, PCTX)?;
        let qpol: String = get(r, 3, PCTX)?;
        let tq: String = get(r, 4, PCTX)?;
        let table_id = format!("table {tq}");
        let cmd = match get::<String, _>(r, 5, PCTX)?.as_str() {
            "r" => "SELECT",
            "a" => "INSERT",
            "w" => "UPDATE",
            "d" => "DELETE",
            _ => "ALL",
        };
        let permissive = if get::<bool, _>(r, 6, PCTX)? {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        };
        let roles: Vec<Option<String>> = get(r, 7, PCTX)?;
        let mut sql = format!("CREATE POLICY {qpol} ON {tq} AS {permissive} FOR {cmd} TO ");
        let roles_at = sql.len();
        sql += &role_list(&roles, &BTreeMap::new());
        if let Some(using) = get::<Option<String>, _>(r, 8, PCTX)? {
            sql += &format!(" USING ({using})");
        }
        if let Some(check) = get::<Option<String>, _>(r, 9, PCTX)? {
            sql += &format!(" WITH CHECK ({check})");
        }
        let mut o = object(
            ObjectKind::Policy,
            &get::<String, _>(r, 1, PCTX)?,
            &get::<String, _>(r, 2, PCTX)?,
            format!("policy {tq}.{qpol}"),
        );
        o.sql = format!("{sql};\n");
        o.sql += &ctx.comment(PG_POLICY, oid, 0, &format!("POLICY {qpol} ON {tq}"));
        o.roles = roles;
        o.roles_at = Some(roles_at);
        o.table = Some(table_id.clone());
        o.depends_on = vec![table_id];
        ctx.push(PG_POLICY, oid, o);
    }

    const TCTX: &str = "reading row security and replica identity";
    let q = format!(
        "SELECT n.nspname, c.relname, pg_catalog.format('%I.%I', n.nspname, c.relname), \
                c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relnamespace = ANY($1) AND c.relkind IN ('r', 'p') AND {ne} \
           AND (c.relrowsecurity OR c.relforcerowsecurity OR c.relreplident IN ('f', 'n')) \
         ORDER BY n.nspname, c.relname",
        ne = not_ext("pg_class", "c"),
    );
    for r in &ctx.query_nsp(TCTX, &q).await? {
        let schema: String = get(r, 0, TCTX)?;
        let name: String = get(r, 1, TCTX)?;
        let tq: String = get(r, 2, TCTX)?;
        let table_id = format!("table {tq}");
        let mut rls = String::new();
        if get::<bool, _>(r, 3, TCTX)? {
            rls += &format!("ALTER TABLE {tq} ENABLE ROW LEVEL SECURITY;\n");
        }
        if get::<bool, _>(r, 4, TCTX)? {
            rls += &format!("ALTER TABLE {tq} FORCE ROW LEVEL SECURITY;\n");
        }
        if !rls.is_empty() {
            let mut o = object(
                ObjectKind::RowSecurity,
                &schema,
                &name,
                format!("row-security {tq}"),
            );
            o.sql = rls;
            o.table = Some(table_id.clone());
            o.depends_on = vec![table_id.clone()];
            ctx.objects.push(o);
        }
        let ident = match get::<String, _>(r, 5, TCTX)?.as_str() {
            "f" => "FULL",
            "n" => "NOTHING",
            _ => continue,
        };
        let mut o = object(
            ObjectKind::ReplicaIdentity,
            &schema,
            &name,
            format!("replica-identity {tq}"),
        );
        o.sql = format!("ALTER TABLE ONLY {tq} REPLICA IDENTITY {ident};\n");
        o.table = Some(table_id.clone());
        o.depends_on = vec![table_id];
        ctx.objects.push(o);
    }
    Ok(())
}

/// Extended statistics objects (`CREATE STATISTICS`).
pub(crate) async fn statistics(ctx: &mut Ctx<'_>) -> Result<(), PgError> {
    const CTX: &str = "reading extended statistics";
    // stxstattarget exists from 13 on.
    let target = if ctx.version >= 130000 {
        "coalesce(s.stxstattarget::int4, -1)"
    } else {
        "-1"
    };
    let q = format!(
        "SELECT s.oid, n.nspname, s.stxname, pg_catalog.format('%I.%I', n.nspname, s.stxname), \
                pg_catalog.pg_get_statisticsobjdef(s.oid), {target}, \
                pg_catalog.format('%I.%I', tn.nspname, c.relname) \
         FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace \
         JOIN pg_catalog.pg_class c ON c.oid = s.stxrelid \
         JOIN pg_catalog.pg_namespace tn ON tn.oid = c.relnamespace \
         WHERE s.stxnamespace = ANY($1) AND {ne} ORDER BY n.nspname, s.stxname",
        ne = not_ext("pg_statistic_ext", "s"),
    );
    for r in &ctx.query_nsp(CTX, &q).await? {
        let oid: u32 = get(r, 0, CTX)?;
        let qname: String = get(r, 3, CTX)?;
        let def: String = get(r, 4, CTX)?;
        let target: i32 = get(r, 5, CTX)?;
        let table_id = format!("table {}", get::<String, _>(r, 6, CTX)?);
        let mut o = object(
            ObjectKind::Statistics,
            &get::<String, _>(r, 1, CTX)?,
            &get::<String, _>(r, 2, CTX)?,
            format!("statistics {qname}"),
        );
        o.sql = format!("{def};\n");
        if target >= 0 {
            o.sql += &format!("ALTER STATISTICS {qname} SET STATISTICS {target};\n");
        }
        o.sql += &ctx.comment(PG_STATISTIC_EXT, oid, 0, &format!("STATISTICS {qname}"));
        o.table = Some(table_id.clone());
        o.depends_on = vec![table_id];
        ctx.push(PG_STATISTIC_EXT, oid, o);
    }
    Ok(())
}
