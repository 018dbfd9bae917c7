//! Functions, procedures and aggregates.

use super::catalog::{acl_json, get, not_ext, object, parse_acl, Ctx, PG_PROC};
use super::ObjectKind;
use crate::error::PgError;
use crate::sql::quote_literal;

/// Functions and procedures, deparsed by `pg_get_functiondef`; those internal to another
/// object (range type constructors) are created with it.
pub(crate) async fn functions(ctx: &mut Ctx<'_>) -> Result<(), PgError> {
    const CTX: &str = "reading functions";
    let sql_body = if ctx.version >= 140000 {
        "p.prosqlbody IS NOT NULL"
    } else {
        "false"
    };
    let q = format!(
        "SELECT p.oid, n.nspname, p.proname, p.prokind::text, \
                pg_catalog.format('%I.%I(%s)', n.nspname, p.proname, \
                                  pg_catalog.pg_get_function_identity_arguments(p.oid)) AS sig, \
                pg_catalog.pg_get_functiondef(p.oid) AS def, \
                pg_catalog.pg_get_userbyid(p.proowner), {acl} AS acl, {sql_body} AS atomic \
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE p.pronamespace = ANY($1) AND p.prokind IN ('f', 'p', 'w') AND {ne} \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = \
               'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid AND d.deptype = 'i') \
         ORDER BY n.nspname, p.proname, sig",
        acl = acl_json("p.proacl", "p.proowner"),
        ne = not_ext("pg_proc", "p"),
    );
    for r in &ctx.query_nsp(CTX, &q).await? {
        let oid: u32 = get(r, 0, CTX)?;
        let prokind: String = get(r, 3, CTX)?;
        let sig: String = get(r, 4, CTX)?;
        let (kind, word) = if prokind == "p" {
            (ObjectKind::Procedure, "PROCEDURE")
        } else {
            (ObjectKind::Function, "FUNCTION")
        };
        let mut o = object(
            kind,
            &get::<String, _>(r, 1, CTX)?,
            &get::<String, _>(r, 2, CTX)?,
            format!("function {sig}"),
        );
        let def: String = get(r, 5, CTX)?;
        o.sql = format!("{};\n", def.trim_end());
        o.sql += &ctx.comment(PG_PROC, oid, 0, &format!("{word} {sig}"));
        o.owner = Some(get(r, 6, CTX)?);
        o.acl = parse_acl(r, "acl", CTX)?;
        o.alter_target = Some(format!("{word} {sig}"));
        o.grant_target = Some(format!("{word} {sig}"));
        if get::<bool, _>(r, "atomic", CTX)? {
            o.min_server_version = 140000;
        }
        ctx.push(PG_PROC, oid, o);
    }
    Ok(())
}

/// Normal aggregates, rebuilt from `pg_aggregate` (ordered-set ones are refused earlier).
pub(crate) async fn aggregates(ctx: &mut Ctx<'_>) -> Result<(), PgError> {
    const CTX: &str = "reading aggregates";
    let f = |col: &str| {
        format!(
            "(SELECT pg_catalog.format('%I.%I', fn.nspname, fp.proname) FROM pg_catalog.pg_proc fp \
              JOIN pg_catalog.pg_namespace fn ON fn.oid = fp.pronamespace WHERE fp.oid = a.{col}) \
             AS {col}"
        )
    };
    let q = format!(
        "SELECT p.oid, n.nspname, p.proname, \
                pg_catalog.format('%I.%I(%s)', n.nspname, p.proname, \
                                  pg_catalog.pg_get_function_identity_arguments(p.oid)) AS sig, \
                pg_catalog.pg_get_function_arguments(p.oid) AS args, \
                pg_catalog.pg_get_userbyid(p.proowner), {acl} AS acl, \
                {sfunc}, pg_catalog.format_type(a.aggtranstype, NULL) AS stype, a.aggtransspace, \
                {finalfn}, a.aggfinalextra, a.aggfinalmodify::text, {combinefn}, {serialfn}, \
                {deserialfn}, a.agginitval, {mtransfn}, {minvtransfn}, \
                CASE WHEN a.aggmtranstype <> 0 THEN pg_catalog.format_type(a.aggmtranstype, NULL) END \
                  AS mstype, a.aggmtransspace, {mfinalfn}, a.aggmfinalextra, \
                a.aggmfinalmodify::text, a.aggminitval, \
                (SELECT pg_catalog.format('OPERATOR(%I.%s)', on_.nspname, o.oprname) \
                 FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace on_ \
                 ON on_.oid = o.oprnamespace WHERE o.oid = a.aggsortop) AS sortop, \
                p.proparallel::text \
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = p.oid \
         WHERE p.pronamespace = ANY($1) AND p.prokind = 'a' AND a.aggkind = 'n' AND {ne} \
         ORDER BY n.nspname, p.proname, sig",
        acl = acl_json("p.proacl", "p.proowner"),
        ne = not_ext("pg_proc", "p"),
        sfunc = f("aggtransfn"),
        finalfn = f("aggfinalfn"),
        combinefn = f("aggcombinefn"),
        serialfn = f("aggserialfn"),
        deserialfn = f("aggdeserialfn"),
        mtransfn = f("aggmtransfn"),
        minvtransfn = f("aggminvtransfn"),
        mfinalfn = f("aggmfinalfn"),
    );
    for r in &ctx.query_nsp(CTX, &q).await? {
        let oid: u32 = get(r, 0, CTX)?;
        let sig: String = get(r, 3, CTX)?;
        let args: String = get(r, 4, CTX)?;
        let args = if args.is_empty() { "*".to_string() } else { args };
        let mut o = object(
            ObjectKind::Aggregate,
            &get::<String, _>(r, 1, CTX)?,
            &get::<String, _>(r, 2, CTX)?,
            format!("function {sig}"),
        );
        let name_only = sig.split_once('(').map(|(n, _)| n).unwrap_or(&sig);
        let mut parts = vec![
            format!("SFUNC = {}", get::<String, _>(r, "aggtransfn", CTX)?),
            format!("STYPE = {}", get::<String, _>(r, "stype", CTX)?),
        ];
        let opt = |col: &str| get::<Option<String>, _>(r, col, CTX);
        if get::<i32, _>(r, "aggtransspace", CTX)? != 0 {
            parts.push(format!("SSPACE = {}", get::<i32, _>(r, "aggtransspace", CTX)?));
        }
        if let Some(v) = opt("aggfinalfn")? {
            parts.push(format!("FINALFUNC = {v}"));
            if get::<bool, _>(r, "aggfinalextra", CTX)? {
                parts.push("FINALFUNC_EXTRA".into());
            }
            parts.push(format!("FINALFUNC_MODIFY = {}", modify(&opt("aggfinalmodify")?)));
        }
        for (col, key) in [
            ("aggcombinefn", "COMBINEFUNC"),
            ("aggserialfn", "SERIALFUNC"),
            ("aggdeserialfn", "DESERIALFUNC"),
        ] {
            if let Some(v) = opt(col)? {
                parts.push(format!("{key} = {v}"));
            }
        }
        if let Some(v) = opt("agginitval")? {
            parts.push(format!("INITCOND = {}", quote_literal(&v)));
        }
        if let Some(v) = opt("aggmtransfn")? {
            parts.push(format!("MSFUNC = {v}"));
            if let Some(v) = opt("aggminvtransfn")? {
                parts.push(format!("MINVFUNC = {v}"));
            }
            if let Some(v) = opt("mstype")? {
                parts.push(format!("MSTYPE = {v}"));
            }
            if get::<i32, _>(r, "aggmtransspace", CTX)? != 0 {
                parts.push(format!("MSSPACE = {}", get::<i32, _>(r, "aggmtransspace", CTX)?));
            }
            if let Some(v) = opt("aggmfinalfn")? {
                parts.push(format!("MFINALFUNC = {v}"));
                if get::<bool, _>(r, "aggmfinalextra", CTX)? {
                    parts.push("MFINALFUNC_EXTRA".into());
                }
                parts.push(format!(
                    "MFINALFUNC_MODIFY = {}",
                    modify(&opt("aggmfinalmodify")?)
                ));
            }
            if let Some(v) = opt("aggminitval")? {
                parts.push(format!("MINITCOND = {}", quote_literal(&v)));
            }
        }
        if let Some(v) = opt("sortop")? {
            parts.push(format!("SORTOP = {v}"));
        }
        match opt("proparallel")?.as_deref() {
            Some("s") => parts.push("PARALLEL = safe".into()),
            Some("r") => parts.push("PARALLEL = restricted".into()),
            _ => {}
        }
        o.sql = format!(
            "CREATE AGGREGATE {name_only}({args}) (\n    {}\n);\n",
            parts.join(",\n    ")
        );
        o.sql += &ctx.comment(PG_PROC, oid, 0, &format!("AGGREGATE {sig}"));
        o.owner = Some(get(r, 5, CTX)?);
        o.acl = parse_acl(r, "acl", CTX)?;
        o.alter_target = Some(format!("AGGREGATE {sig}"));
        o.grant_target = Some(format!("FUNCTION {sig}"));
        ctx.push(PG_PROC, oid, o);
    }
    Ok(())
}

fn modify(code: &Option<String>) -> &'static str {
    match code.as_deref() {
        Some("s") => "SHAREABLE",
        Some("w") => "READ_WRITE",
        _ => "READ_ONLY",
    }
}
