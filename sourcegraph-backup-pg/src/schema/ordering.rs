//! Dependency order: a topological sort per section over the edges gathered from `pg_depend`
//! (plus the few it does not record), with a stable tie-break by kind, schema and name so the
//! output is deterministic.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{ObjectKind, SchemaObject, Section};

/// Adds the edges `pg_depend` cannot express:
/// - a materialized view's refresh waits for the refreshes of materialized views it reads;
/// - whatever needs a partitioned index (an FK to a partitioned key) waits for every
///   `ATTACH PARTITION` into it, since the parent index is only valid once all are attached.
pub(crate) fn add_implied_edges(objects: &mut [SchemaObject]) {
    let kinds: HashMap<String, ObjectKind> = objects.iter().map(|o| (o.identity.clone(), o.kind)).collect();
    let refresh_of: HashMap<String, String> = objects
        .iter()
        .filter(|o| o.kind == ObjectKind::MaterializedViewRefresh)
        .filter_map(|o| o.table.clone().map(|t| (t, o.identity.clone())))
        .collect();
    let deps_of: HashMap<String, Vec<String>> = objects
        .iter()
        .map(|o| (o.identity.clone(), o.depends_on.clone()))
        .collect();
    // An attach depends on the parent index and the partition's own index; the parent is
    // the one on another table (`depends_on` is sorted, so its position says nothing).
    let table_of: HashMap<String, Option<String>> = objects
        .iter()
        .map(|o| (o.identity.clone(), o.table.clone()))
        .collect();
    let mut direct: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
    for o in objects.iter().filter(|o| o.kind == ObjectKind::IndexAttach) {
        let on_other_table = |d: &&String| table_of.get(*d).is_some_and(|t| *t != o.table);
        let child = o.depends_on.iter().find(|d| !on_other_table(d)).cloned();
        for parent in o.depends_on.iter().filter(on_other_table) {
            direct
                .entry(parent.clone())
                .or_default()
                .push((o.identity.clone(), child.clone()));
        }
    }
    // A partitioned index becomes valid only when every index below it, at every level of
    // sub-partitioning, is attached: what needs it waits for all of those attaches.
    let mut attaches: HashMap<String, Vec<String>> = HashMap::new();
    for parent in direct.keys() {
        let mut all = Vec::new();
        let mut stack = vec![parent.clone()];
        while let Some(index) = stack.pop() {
            for (attach, child) in direct.get(&index).into_iter().flatten() {
                if !all.contains(attach) {
                    all.push(attach.clone());
                    stack.extend(child.clone());
                }
            }
        }
        attaches.insert(parent.clone(), all);
    }
    for o in objects.iter_mut() {
        let mut extra = Vec::new();
        if o.kind == ObjectKind::MaterializedViewRefresh {
            if let Some(view) = &o.table {
                for dep in deps_of.get(view).into_iter().flatten() {
                    if kinds.get(dep) == Some(&ObjectKind::MaterializedView) {
                        if let Some(r) = refresh_of.get(dep) {
                            extra.push(r.clone());
                        }
                    }
                }
            }
        }
        if o.kind != ObjectKind::IndexAttach {
            for dep in &o.depends_on {
                extra.extend(attaches.get(dep).into_iter().flatten().cloned());
            }
        }
        for e in extra {
            if e != o.identity && !o.depends_on.contains(&e) {
                o.depends_on.push(e);
            }
        }
        o.depends_on.sort();
    }
}

/// Sorts objects: pre-data first, then post-data, each in dependency order. Edges to
/// unknown identities or into the other section are ignored; a cycle is broken at the
/// smallest remaining object (by kind, schema, name).
pub(crate) fn order(objects: Vec<SchemaObject>) -> Vec<SchemaObject> {
    let mut out = Vec::with_capacity(objects.len());
    let (pre, post): (Vec<_>, Vec<_>) = objects.into_iter().partition(|o| o.section == Section::PreData);
    out.extend(sort_section(pre));
    out.extend(sort_section(post));
    out
}

type Key = (ObjectKind, String, String, String);

fn key(o: &SchemaObject) -> Key {
    (o.kind, o.schema.clone(), o.name.clone(), o.identity.clone())
}

fn sort_section(objects: Vec<SchemaObject>) -> Vec<SchemaObject> {
    let by_id: HashMap<String, Key> = objects.iter().map(|o| (o.identity.clone(), key(o))).collect();
    // Remaining prerequisites per object, and who waits on whom.
    let mut pending: BTreeMap<Key, BTreeSet<Key>> = BTreeMap::new();
    let mut waiters: HashMap<Key, Vec<Key>> = HashMap::new();
    for o in &objects {
        let k = key(o);
        let deps: BTreeSet<Key> = o
            .depends_on
            .iter()
            .filter_map(|d| by_id.get(d).cloned())
            .filter(|d| *d != k)
            .collect();
        for d in &deps {
            waiters.entry(d.clone()).or_default().push(k.clone());
        }
        pending.insert(k, deps);
    }
    let mut store: HashMap<Key, SchemaObject> = objects.into_iter().map(|o| (key(&o), o)).collect();
    let mut ready: BTreeSet<Key> = pending
        .iter()
        .filter(|(_, d)| d.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    let mut out = Vec::with_capacity(store.len());
    while !pending.is_empty() {
        let next = match ready.pop_first() {
            Some(k) => k,
            // A cycle: emit the smallest remaining object and carry on.
            None => match pending.keys().next() {
                Some(k) => k.clone(),
                None => break,
            },
        };
        pending.remove(&next);
        for w in waiters.get(&next).into_iter().flatten() {
            if let Some(deps) = pending.get_mut(w) {
                deps.remove(&next);
                if deps.is_empty() {
                    ready.insert(w.clone());
                }
            }
        }
        if let Some(o) = store.remove(&next) {
            out.push(o);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::schema::catalog::object;

    fn obj(kind: ObjectKind, name: &str, deps: &[&str]) -> SchemaObject {
        let mut o = object(kind, "public", name, format!("{kind:?} {name}"));
        o.depends_on = deps.iter().map(|d| d.to_string()).collect();
        o
    }

    fn ids(objects: &[SchemaObject]) -> Vec<String> {
        objects.iter().map(|o| o.identity.clone()).collect()
    }

    #[test]
    fn fk_to_partitioned_key_waits_for_every_attach_whatever_the_names() {
        // The partition's identity sorts before the parent's ('"' < '.'), which once made
        // the attach look like it belonged to the partition's index.
        let on = |mut o: SchemaObject, table: &str| {
            o.table = Some(table.into());
            o
        };
        let parent_key = on(obj(ObjectKind::UniqueConstraint, "m.key", &[]), "table m");
        let child_key = on(
            obj(ObjectKind::UniqueConstraint, "\"M 2025\".key", &[]),
            "table \"M 2025\"",
        );
        let mut attach = on(obj(ObjectKind::IndexAttach, "attach", &[]), "table \"M 2025\"");
        attach.depends_on = vec![child_key.identity.clone(), parent_key.identity.clone()];
        attach.depends_on.sort();
        assert_eq!(
            attach.depends_on[0], child_key.identity,
            "the trap: child sorts first"
        );
        let fk = on(
            obj(ObjectKind::ForeignKey, "notes.fk", &[&parent_key.identity]),
            "table notes",
        );
        let mut objects = vec![parent_key, child_key, attach, fk];
        add_implied_edges(&mut objects);
        let fk = objects.iter().find(|o| o.kind == ObjectKind::ForeignKey).unwrap();
        assert!(
            fk.depends_on.contains(&"IndexAttach attach".to_string()),
            "{:?}",
            fk.depends_on
        );
        let attach = objects
            .iter()
            .find(|o| o.kind == ObjectKind::IndexAttach)
            .unwrap();
        assert_eq!(attach.depends_on.len(), 2, "an attach gains no edges of its own");
    }

    #[test]
    fn dependencies_beat_the_kind_tie_break() {
        // A function returning a table's row type must follow that table.
        let sorted = order(vec![
            obj(ObjectKind::View, "v", &["Table t"]),
            obj(ObjectKind::Function, "f", &["Table t"]),
            obj(ObjectKind::Table, "t", &["Sequence s"]),
            obj(ObjectKind::Sequence, "s", &[]),
            obj(ObjectKind::Index, "i", &["Table t", "Function f"]),
        ]);
        assert_eq!(
            ids(&sorted),
            ["Sequence s", "Table t", "Function f", "View v", "Index i"]
        );
    }

    #[test]
    fn order_is_deterministic_and_cycles_do_not_lose_objects() {
        let input = vec![
            obj(ObjectKind::Table, "b", &["Table a"]),
            obj(ObjectKind::Table, "a", &["Table b"]),
            obj(ObjectKind::EnumType, "e", &[]),
        ];
        let mut reversed = input.clone();
        reversed.reverse();
        let one = ids(&order(input));
        assert_eq!(one, ids(&order(reversed)));
        assert_eq!(one, ["EnumType e", "Table a", "Table b"]);
    }

    #[test]
    fn refreshes_follow_the_materialized_views_they_read() {
        let mut base = obj(ObjectKind::MaterializedViewRefresh, "r1", &[]);
        base.table = Some("MaterializedView base".into());
        let mut top = obj(ObjectKind::MaterializedViewRefresh, "r0", &[]);
        top.table = Some("MaterializedView top".into());
        let mut objects = vec![
            obj(ObjectKind::MaterializedView, "base", &[]),
            obj(ObjectKind::MaterializedView, "top", &["MaterializedView base"]),
            top,
            base,
        ];
        add_implied_edges(&mut objects);
        let sorted = ids(&order(objects));
        let pos = |id: &str| sorted.iter().position(|s| s == id);
        assert!(pos("MaterializedViewRefresh r1") < pos("MaterializedViewRefresh r0"));
    }
}
