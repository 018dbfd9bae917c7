//! Tables (regular, unlogged, partitioned, partitions, inheritance children) and sequences.

use std::collections::HashMap;

use super::catalog::{
    acl_json, get, not_ext, object, parse_acl, with_options, Ctx, PG_ATTRDEF, PG_CLASS, PG_CONSTRAINT,
    PG_TYPE,
};
use super::{ObjectKind, SequenceInfo, TableInfo};
use crate::error::PgError;
use crate::sizes::table_sizes;

/// One column of a table, view or composite type.
pub(crate) struct Column {
    pub relid: u32,
    pub attnum: i16,
    pub name: String,
    pub qname: String,
    pub type_name: String,
    pub not_null: bool,
    pub is_local: bool,
    pub identity: String,
    pub generated: String,
    pub collation: Option<String>,
    pub default: Option<String>,
    pub attrdef_oid: Option<u32>,
    pub stattarget: i32,
    pub storage: Option<String>,
    /// `attoptions` (`n_distinct=...`), as `k=v` strings.
    pub options: Vec<String>,
    /// Non-default compression method (14+).
    pub compression: Option<String>,
}

/// `COMMENT ON` statements for relation `oid` (`target` names it, e.g. `TABLE "s"."t"`) and for
/// its columns `cols`, which belong to the relation named `qname`.
pub(crate) fn relation_comments<'a>(
    ctx: &Ctx<'_>,
    oid: u32,
    target: &str,
    qname: &str,
    cols: impl IntoIterator<Item = &'a Column>,
) -> String {
    let mut sql = ctx.comment(PG_CLASS, oid, 0, target);
    for c in cols {
        sql += &ctx.comment(
            PG_CLASS,
            oid,
            i32::from(c.attnum),
            &format!("COLUMN {qname}.{}", c.qname),
        );
    }
    sql
}

/// Columns (not dropped) of the given relations, ordered by relation and attnum.
pub(crate) async fn column_rows(ctx: &Ctx<'_>, relids: &[u32]) -> Result<Vec<Column>, PgError> {
    const CTX: &str = "reading columns";
    // Column compression exists from 14 on.
    let compression = if ctx.version >= 140000 {
        "CASE a.attcompression WHEN 'p' THEN 'pglz' WHEN 'l' THEN 'lz4' END"
    } else {
        "NULL::text"
    };
    let q = format!(
        "SELECT a.attrelid, a.attnum, a.attname, pg_catalog.quote_ident(a.attname), \
                pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attislocal, \
                a.attidentity::text, a.attgenerated::text, \
                CASE WHEN a.attcollation <> t.typcollation THEN \
                  (SELECT pg_catalog.format('%I.%I', cn.nspname, co.collname) \
                   FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn \
                   ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END, \
                pg_catalog.pg_get_expr(d.adbin, d.adrelid), d.oid, \
                coalesce(a.attstattarget::int4, -1), \
                CASE WHEN a.attstorage <> t.typstorage THEN \
                  CASE a.attstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL' \
                  WHEN 'm' THEN 'MAIN' ELSE 'EXTENDED' END END, \
                coalesce(a.attoptions, '{{}}'::text[]), {compression} \
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum"
    );
    let rows = super::catalog::rows(ctx.client, CTX, &q, &[&relids]).await?;
    rows.iter()
        .map(|r| {
            Ok(Column {
                relid: get(r, 0, CTX)?,
                attnum: get(r, 1, CTX)?,
                name: get(r, 2, CTX)?,
                qname: get(r, 3, CTX)?,
                type_name: get(r, 4, CTX)?,
                not_null: get(r, 5, CTX)?,
                is_local: get(r, 6, CTX)?,
                identity: get(r, 7, CTX)?,
                generated: get(r, 8, CTX)?,
                collation: get(r, 9, CTX)?,
                default: get(r, 10, CTX)?,
                attrdef_oid: get(r, 11, CTX)?,
                stattarget: get(r, 12, CTX)?,
                storage: get(r, 13, CTX)?,
                options: get(r, 14, CTX)?,
                compression: get(r, 15, CTX)?,
            })
        })
        .collect()
}

struct Seq {
    oid: u32,
    schema: String,
    name: String,
    qname: String,
    unlogged: bool,
    type_name: String,
    options: String,
    owner_rel: Option<u32>,
    owner_col: Option<i32>,
    deptype: Option<String>,
    owner: String,
    acl: Vec<super::AclEntry>,
}

async fn sequences(ctx: &Ctx<'_>) -> Result<Vec<Seq>, PgError> {
    const CTX: &str = "reading sequences";
    let q = format!(
        "SELECT c.oid, n.nspname, c.relname, pg_catalog.format('%I.%I', n.nspname, c.relname), \
                c.relpersistence = 'u', pg_catalog.format_type(s.seqtypid, NULL), \
                pg_catalog.format('START WITH %s INCREMENT BY %s MINVALUE %s MAXVALUE %s CACHE %s%s', \
                  s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, \
                  CASE WHEN s.seqcycle THEN ' CYCLE' ELSE ' NO CYCLE' END), \
                d.refobjid, d.refobjsubid, d.deptype::text, \
                pg_catalog.pg_get_userbyid(c.relowner), {acl} AS acl \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid \
         LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.deptype IN ('a', 'i') \
         WHERE c.relkind = 'S' AND c.relnamespace = ANY($1) AND {ne} \
         ORDER BY n.nspname, c.relname",
        acl = acl_json("c.relacl", "c.relowner"),
        ne = not_ext("pg_class", "c"),
    );
    ctx.query_nsp(CTX, &q)
        .await?
        .iter()
        .map(|r| {
            Ok(Seq {
                oid: get(r, 0, CTX)?,
                schema: get(r, 1, CTX)?,
                name: get(r, 2, CTX)?,
                qname: get(r, 3, CTX)?,
                unlogged: get(r, 4, CTX)?,
                type_name: get(r, 5, CTX)?,
                options: get(r, 6, CTX)?,
                owner_rel: get(r, 7, CTX)?,
                owner_col: get(r, 8, CTX)?,
                deptype: get(r, 9, CTX)?,
                owner: get(r, 10, CTX)?,
                acl: parse_acl(r, "acl", CTX)?,
            })
        })
        .collect()
}

/// Tables and sequences, with column defaults, identity and generated columns.
pub(crate) async fn tables_and_sequences(
    ctx: &mut Ctx<'_>,
) -> Result<(Vec<TableInfo>, Vec<SequenceInfo>), PgError> {
    const CTX: &str = "reading tables";
    let q = format!(
        "SELECT c.oid, n.nspname, c.relname, pg_catalog.format('%I.%I', n.nspname, c.relname), \
                c.relkind::text, c.relpersistence::text, c.relispartition, \
                CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END, \
                CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END, \
                coalesce(c.reloptions, '{{}}'::text[]), \
                ARRAY(SELECT pg_catalog.format('%I.%I', pn.nspname, pc.relname) \
                      FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class pc ON pc.oid = i.inhparent \
                      JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace \
                      WHERE i.inhrelid = c.oid ORDER BY i.inhseqno), \
                pg_catalog.pg_get_userbyid(c.relowner), {acl} AS acl, c.reltype, \
                EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid \
                        AND NOT t.tgisinternal), \
                ARRAY(SELECT a.attname::text FROM pg_catalog.pg_constraint pk \
                      CROSS JOIN LATERAL unnest(pk.conkey) WITH ORDINALITY k(attnum, ord) \
                      JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
                      WHERE pk.conrelid = c.oid AND pk.contype = 'p' ORDER BY k.ord) \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND c.relnamespace = ANY($1) AND {ne} \
         ORDER BY n.nspname, c.relname",
        acl = acl_json("c.relacl", "c.relowner"),
        ne = not_ext("pg_class", "c"),
    );
    let rows = ctx.query_nsp(CTX, &q).await?;
    let relids: Vec<u32> = rows.iter().map(|r| get(r, 0, CTX)).collect::<Result<_, _>>()?;
    let columns = column_rows(ctx, &relids).await?;
    let seqs = sequences(ctx).await?;
    let checks = inline_checks(ctx, &relids).await?;
    let qualified: Vec<String> = rows.iter().map(|r| get(r, 3, CTX)).collect::<Result<_, _>>()?;
    let qualified: Vec<&str> = qualified.iter().map(String::as_str).collect();
    let sizes = table_sizes(ctx.client, &qualified).await?;
    let mut qnames: HashMap<u32, (String, String)> = HashMap::new();
    for r in &rows {
        qnames.insert(
            get(r, 0, CTX)?,
            (get(r, 3, CTX)?, format!("table {}", get::<String, _>(r, 3, CTX)?)),
        );
    }

    // Sequences first: identity ones are created with their column, the rest stand alone.
    let mut seq_infos = Vec::new();
    let mut identity_options: HashMap<(u32, i32), String> = HashMap::new();
    for s in &seqs {
        let is_identity = s.deptype.as_deref() == Some("i");
        seq_infos.push(SequenceInfo {
            schema: s.schema.clone(),
            name: s.name.clone(),
            qualified_name: s.qname.clone(),
            is_identity,
        });
        if let (true, Some(rel), Some(col)) = (is_identity, s.owner_rel, s.owner_col) {
            identity_options.insert((rel, col), format!("SEQUENCE NAME {} {}", s.qname, s.options));
            if let Some((_, tid)) = qnames.get(&rel) {
                let tid = tid.clone();
                ctx.register(PG_CLASS, s.oid, &tid);
            }
            continue;
        }
        let mut o = object(
            ObjectKind::Sequence,
            &s.schema,
            &s.name,
            format!("sequence {}", s.qname),
        );
        let unlogged = if s.unlogged {
            o.min_server_version = 150000;
            "UNLOGGED "
        } else {
            ""
        };
        o.sql = format!(
            "CREATE {unlogged}SEQUENCE {} AS {} {};\n",
            s.qname, s.type_name, s.options
        );
        o.sql += &ctx.comment(PG_CLASS, s.oid, 0, &format!("SEQUENCE {}", s.qname));
        o.owner = Some(s.owner.clone());
        o.acl = s.acl.clone();
        o.alter_target = Some(format!("SEQUENCE {}", s.qname));
        o.grant_target = Some(format!("SEQUENCE {}", s.qname));
        let seq_id = o.identity.clone();
        ctx.push(PG_CLASS, s.oid, o);
        if let (Some(rel), Some(col)) = (s.owner_rel, s.owner_col) {
            if let Some((tq, tid)) = qnames.get(&rel).cloned() {
                let colname = columns
                    .iter()
                    .find(|c| c.relid == rel && i32::from(c.attnum) == col)
                    .map(|c| c.qname.clone())
                    .unwrap_or_default();
                let mut ob = object(
                    ObjectKind::SequenceOwnedBy,
                    &s.schema,
                    &s.name,
                    format!("owned-by {}", s.qname),
                );
                ob.sql = format!("ALTER SEQUENCE {} OWNED BY {tq}.{colname};\n", s.qname);
                ob.depends_on = vec![seq_id, tid];
                ctx.objects.push(ob);
            }
        }
    }

    let mut infos = Vec::new();
    for (r, sizes) in rows.iter().zip(sizes) {
        let oid: u32 = get(r, 0, CTX)?;
        let schema: String = get(r, 1, CTX)?;
        let name: String = get(r, 2, CTX)?;
        let qname: String = get(r, 3, CTX)?;
        let relkind: String = get(r, 4, CTX)?;
        let persistence: String = get(r, 5, CTX)?;
        let is_partition: bool = get(r, 6, CTX)?;
        let bound: Option<String> = get(r, 7, CTX)?;
        let partkey: Option<String> = get(r, 8, CTX)?;
        let reloptions: Vec<String> = get(r, 9, CTX)?;
        let parents: Vec<String> = get(r, 10, CTX)?;
        let identity = format!("table {qname}");
        let mut o = object(ObjectKind::Table, &schema, &name, identity.clone());
        let cols: Vec<&Column> = columns.iter().filter(|c| c.relid == oid).collect();

        let mut elements = Vec::new();
        for c in &cols {
            if let Some(d) = c.attrdef_oid {
                ctx.register(PG_ATTRDEF, d, &identity);
            }
            if is_partition {
                // Columns come from the parent; only local NOT NULL / defaults are added.
                let mut opts = String::new();
                if c.not_null && ctx.version < 180000 {
                    opts += " NOT NULL";
                }
                if let (Some(d), "") = (&c.default, c.generated.as_str()) {
                    if c.identity.is_empty() {
                        opts += &format!(" DEFAULT {d}");
                    }
                }
                if !opts.is_empty() {
                    elements.push(format!("    {} WITH OPTIONS{opts}", c.qname));
                }
                continue;
            }
            if !c.is_local {
                continue;
            }
            let mut def = format!("    {} {}", c.qname, c.type_name);
            if let Some(coll) = &c.collation {
                def += &format!(" COLLATE {coll}");
            }
            match (c.generated.as_str(), c.identity.as_str()) {
                ("s", _) => {
                    def += &format!(
                        " GENERATED ALWAYS AS ({}) STORED",
                        c.default.as_deref().unwrap_or("NULL")
                    );
                }
                ("v", _) => {
                    def += &format!(
                        " GENERATED ALWAYS AS ({}) VIRTUAL",
                        c.default.as_deref().unwrap_or("NULL")
                    );
                    o.min_server_version = o.min_server_version.max(180000);
                }
                (_, "a" | "d") => {
                    let how = if c.identity == "a" { "ALWAYS" } else { "BY DEFAULT" };
                    let opts = identity_options
                        .get(&(oid, i32::from(c.attnum)))
                        .map(|o| format!(" ({o})"))
                        .unwrap_or_default();
                    def += &format!(" GENERATED {how} AS IDENTITY{opts}");
                }
                _ => {
                    if let Some(d) = &c.default {
                        def += &format!(" DEFAULT {d}");
                    }
                }
            }
            if c.not_null {
                def += " NOT NULL";
            }
            elements.push(def);
        }
        for (con_oid, con_name, con_def) in checks.iter().filter(|c| c.0 == oid).map(|c| &c.1) {
            elements.push(format!("    CONSTRAINT {con_name} {con_def}"));
            ctx.register(PG_CONSTRAINT, *con_oid, &identity);
        }

        let unlogged = if persistence == "u" { "UNLOGGED " } else { "" };
        let mut sql = format!("CREATE {unlogged}TABLE {qname}");
        let body = if elements.is_empty() {
            String::new()
        } else {
            format!("\n{}\n", elements.join(",\n"))
        };
        if is_partition {
            let parent = parents.first().cloned().unwrap_or_default();
            sql += &format!(" PARTITION OF {parent}");
            if !body.is_empty() {
                sql += &format!(" ({body})");
            }
            sql += &format!(" {}", bound.unwrap_or_default());
        } else {
            sql += &format!(" ({body})");
            if !parents.is_empty() {
                sql += &format!(" INHERITS ({})", parents.join(", "));
            }
        }
        if let Some(pk) = &partkey {
            sql += &format!(" PARTITION BY {pk}");
        }
        sql += &with_options(&reloptions);
        sql += ";\n";
        for c in &cols {
            if c.stattarget >= 0 {
                sql += &format!(
                    "ALTER TABLE ONLY {qname} ALTER COLUMN {} SET STATISTICS {};\n",
                    c.qname, c.stattarget
                );
            }
            if let Some(st) = &c.storage {
                sql += &format!(
                    "ALTER TABLE ONLY {qname} ALTER COLUMN {} SET STORAGE {st};\n",
                    c.qname
                );
            }
            if !c.options.is_empty() {
                let opts = with_options(&c.options);
                let opts = opts.trim_start().trim_start_matches("WITH ");
                sql += &format!("ALTER TABLE ONLY {qname} ALTER COLUMN {} SET {opts};\n", c.qname);
            }
            if let Some(method) = &c.compression {
                sql += &format!(
                    "ALTER TABLE ONLY {qname} ALTER COLUMN {} SET COMPRESSION {method};\n",
                    c.qname
                );
                o.min_server_version = o.min_server_version.max(140000);
            }
        }
        sql += &relation_comments(ctx, oid, &format!("TABLE {qname}"), &qname, cols.iter().copied());
        // Inline checks are not objects of their own: their comments go with the table.
        for (con_oid, con_name, _) in checks.iter().filter(|c| c.0 == oid).map(|c| &c.1) {
            sql += &ctx.comment(
                PG_CONSTRAINT,
                *con_oid,
                0,
                &format!("CONSTRAINT {con_name} ON {qname}"),
            );
        }
        o.sql = sql;
        o.owner = Some(get(r, 11, CTX)?);
        o.acl = parse_acl(r, "acl", CTX)?;
        o.alter_target = Some(format!("TABLE {qname}"));
        o.grant_target = Some(format!("TABLE {qname}"));
        let reltype: u32 = get(r, 13, CTX)?;
        ctx.register(PG_TYPE, reltype, &identity);
        ctx.push(PG_CLASS, oid, o);

        let copy_cols: Vec<&&Column> = cols.iter().filter(|c| c.generated.is_empty()).collect();
        infos.push(TableInfo {
            schema,
            name,
            qualified_name: qname,
            identity,
            columns_for_copy: copy_cols.iter().map(|c| c.name.clone()).collect(),
            quoted_columns_for_copy: copy_cols.iter().map(|c| c.qname.clone()).collect(),
            is_partitioned: relkind == "p",
            is_partition,
            parent: parents.first().map(|p| format!("table {p}")),
            relpersistence: persistence,
            has_triggers: get(r, 14, CTX)?,
            primary_key: get(r, 15, CTX)?,
            approx_bytes: sizes.unwrap_or_default().table,
        });
    }
    Ok((infos, seq_infos))
}

type Check = (u32, (u32, String, String));

/// Valid, locally defined CHECK constraints: created inline with their table.
async fn inline_checks(ctx: &Ctx<'_>, relids: &[u32]) -> Result<Vec<Check>, PgError> {
    const CTX: &str = "reading check constraints";
    let rows = super::catalog::rows(
        ctx.client,
        CTX,
        "SELECT co.conrelid, co.oid, pg_catalog.quote_ident(co.conname), \
                pg_catalog.pg_get_constraintdef(co.oid) \
         FROM pg_catalog.pg_constraint co \
         WHERE co.conrelid = ANY($1) AND co.contype = 'c' AND co.conislocal AND co.convalidated \
         ORDER BY co.conrelid, co.conname",
        &[&relids],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                get(r, 0, CTX)?,
                (get(r, 1, CTX)?, get(r, 2, CTX)?, get(r, 3, CTX)?),
            ))
        })
        .collect()
}
