//! Post-data constraints (primary, unique, exclusion, foreign keys, NOT VALID checks) and
//! indexes (with partition index attachment, CLUSTER ON and replica identity).

use std::collections::HashMap;

use super::catalog::{get, not_ext, object, Ctx, PG_CLASS, PG_CONSTRAINT};
use super::ObjectKind;
use crate::error::PgError;

/// The lowest version that can express a deparsed definition.
fn min_version_of(def: &str) -> i32 {
    if def.contains("NULLS NOT DISTINCT") {
        150000
    } else {
        120000
    }
}

/// Constraints not created inline with their table.
pub(crate) async fn constraints(ctx: &mut Ctx<'_>) -> Result<(), PgError> {
    const CTX: &str = "reading constraints";
    let q = format!(
        "SELECT co.oid, n.nspname, co.conname, pg_catalog.quote_ident(co.conname), \
                co.contype::text, pg_catalog.format('%I.%I', n.nspname, c.relname), \
                c.relkind::text, pg_catalog.pg_get_constraintdef(co.oid), co.convalidated, \
                co.conislocal, co.conparentid, co.conindid \
         FROM pg_catalog.pg_constraint co JOIN pg_catalog.pg_class c ON c.oid = co.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relnamespace = ANY($1) AND c.relkind IN ('r', 'p') \
           AND co.contype IN ('p', 'u', 'x', 'f', 'c') AND {ne} \
         ORDER BY n.nspname, c.relname, co.conname",
        ne = not_ext("pg_class", "c"),
    );
    for r in &ctx.query_nsp(CTX, &q).await? {
        let oid: u32 = get(r, 0, CTX)?;
        let schema: String = get(r, 1, CTX)?;
        let name: String = get(r, 2, CTX)?;
        let qcon: String = get(r, 3, CTX)?;
        let contype: String = get(r, 4, CTX)?;
        let tq: String = get(r, 5, CTX)?;
        let partitioned = get::<String, _>(r, 6, CTX)? == "p";
        let def: String = get(r, 7, CTX)?;
        let validated: bool = get(r, 8, CTX)?;
        let is_local: bool = get(r, 9, CTX)?;
        let parent: u32 = get(r, 10, CTX)?;
        let indid: u32 = get(r, 11, CTX)?;
        let kind = match contype.as_str() {
            "p" => ObjectKind::PrimaryKey,
            "u" => ObjectKind::UniqueConstraint,
            "x" => ObjectKind::ExclusionConstraint,
            "f" => ObjectKind::ForeignKey,
            _ => ObjectKind::CheckConstraint,
        };
        // Valid local checks are inline; inherited checks and cloned FKs come from the parent.
        if kind == ObjectKind::CheckConstraint && (!is_local || validated) {
            continue;
        }
        if kind == ObjectKind::ForeignKey && parent != 0 {
            continue;
        }
        // Adding to a partitioned table must recurse (no ONLY) for FKs and checks; keys and
        // exclusion constraints are added with ONLY and the partitions' indexes attached.
        let only = match kind {
            ObjectKind::ForeignKey | ObjectKind::CheckConstraint if partitioned => "",
            _ => "ONLY ",
        };
        let table_id = format!("table {tq}");
        let mut o = object(kind, &schema, &name, format!("constraint {tq}.{qcon}"));
        o.sql = format!("ALTER TABLE {only}{tq} ADD CONSTRAINT {qcon} {def};\n");
        o.sql += &ctx.comment(PG_CONSTRAINT, oid, 0, &format!("CONSTRAINT {qcon} ON {tq}"));
        o.min_server_version = min_version_of(&def);
        o.table = Some(table_id.clone());
        o.depends_on = vec![table_id];
        if matches!(
            kind,
            ObjectKind::PrimaryKey | ObjectKind::UniqueConstraint | ObjectKind::ExclusionConstraint
        ) && indid != 0
        {
            ctx.register(PG_CLASS, indid, &o.identity);
        }
        ctx.push(PG_CONSTRAINT, oid, o);
    }
    Ok(())
}

/// Indexes that do not back a constraint, plus ATTACH PARTITION for partition indexes,
/// CLUSTER ON and REPLICA IDENTITY USING INDEX.
pub(crate) async fn indexes(ctx: &mut Ctx<'_>) -> Result<(), PgError> {
    const CTX: &str = "reading indexes";
    let q = format!(
        "SELECT i.indexrelid, n.nspname, ic.relname, pg_catalog.format('%I.%I', n.nspname, ic.relname), \
                pg_catalog.quote_ident(ic.relname), pg_catalog.format('%I.%I', tn.nspname, tc.relname), \
                pg_catalog.pg_get_indexdef(i.indexrelid), i.indisclustered, i.indisreplident, \
                EXISTS (SELECT 1 FROM pg_catalog.pg_constraint co WHERE co.conindid = i.indexrelid \
                        AND co.conrelid = i.indrelid AND co.contype IN ('p', 'u', 'x')) AS backs, \
                (SELECT ih.inhparent FROM pg_catalog.pg_inherits ih WHERE ih.inhrelid = i.indexrelid) \
                  AS parent, \
                pg_catalog.format('%I.%I', tn.nspname, ic.relname) \
         FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = ic.relnamespace \
         JOIN pg_catalog.pg_class tc ON tc.oid = i.indrelid \
         JOIN pg_catalog.pg_namespace tn ON tn.oid = tc.relnamespace \
         WHERE tc.relnamespace = ANY($1) AND tc.relkind IN ('r', 'p', 'm') AND {ne} \
         ORDER BY n.nspname, ic.relname",
        ne = not_ext("pg_class", "tc"),
    );
    let rows = ctx.query_nsp(CTX, &q).await?;
    let mut attaches: Vec<(u32, u32, String, String, String, String)> = Vec::new();
    let mut qnames: HashMap<u32, String> = HashMap::new();
    for r in &rows {
        let oid: u32 = get(r, 0, CTX)?;
        let schema: String = get(r, 1, CTX)?;
        let name: String = get(r, 2, CTX)?;
        let qidx: String = get(r, 3, CTX)?;
        let bare: String = get(r, 4, CTX)?;
        let tq: String = get(r, 5, CTX)?;
        let def: String = get(r, 6, CTX)?;
        let table_id = format!("table {tq}");
        qnames.insert(oid, qidx.clone());
        let own_id = if get::<bool, _>(r, "backs", CTX)? {
            let Some(id) = ctx.registry.get(&(PG_CLASS, oid)).cloned() else {
                continue;
            };
            // The constraint creates the index; a comment on the index goes with it.
            let comment = ctx.comment(PG_CLASS, oid, 0, &format!("INDEX {qidx}"));
            if let Some(constraint) = ctx.objects.iter_mut().find(|o| o.identity == id) {
                constraint.sql += &comment;
            }
            id
        } else {
            let mut o = object(ObjectKind::Index, &schema, &name, format!("index {qidx}"));
            o.sql = format!("{def};\n");
            o.sql += &ctx.comment(PG_CLASS, oid, 0, &format!("INDEX {qidx}"));
            o.min_server_version = min_version_of(&def);
            o.table = Some(table_id.clone());
            o.depends_on = vec![table_id.clone()];
            let id = o.identity.clone();
            ctx.push(PG_CLASS, oid, o);
            id
        };
        if let Some(parent) = get::<Option<u32>, _>(r, "parent", CTX)? {
            attaches.push((
                oid,
                parent,
                schema.clone(),
                name.clone(),
                own_id.clone(),
                table_id.clone(),
            ));
        }
        if get::<bool, _>(r, 7, CTX)? {
            let mut o = object(ObjectKind::ClusterOn, &schema, &name, format!("cluster {tq}"));
            o.sql = format!("ALTER TABLE {tq} CLUSTER ON {bare};\n");
            o.table = Some(table_id.clone());
            o.depends_on = vec![own_id.clone()];
            ctx.objects.push(o);
        }
        if get::<bool, _>(r, 8, CTX)? {
            let mut o = object(
                ObjectKind::ReplicaIdentity,
                &schema,
                &name,
                format!("replica-identity {tq}"),
            );
            o.sql = format!("ALTER TABLE ONLY {tq} REPLICA IDENTITY USING INDEX {bare};\n");
            o.table = Some(table_id.clone());
            o.depends_on = vec![own_id.clone()];
            ctx.objects.push(o);
        }
    }
    for (oid, parent, schema, name, own_id, table_id) in attaches {
        let (Some(parent_id), Some(pq), Some(cq)) = (
            ctx.registry.get(&(PG_CLASS, parent)).cloned(),
            qnames.get(&parent),
            qnames.get(&oid),
        ) else {
            continue;
        };
        let mut o = object(ObjectKind::IndexAttach, &schema, &name, format!("attach {cq}"));
        o.sql = format!("ALTER INDEX {pq} ATTACH PARTITION {cq};\n");
        o.table = Some(table_id);
        o.depends_on = vec![parent_id, own_id];
        ctx.objects.push(o);
    }
    Ok(())
}
