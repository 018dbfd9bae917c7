//! What the restoring role may do on the target, checked before any write.
//!
//! Managed Postgres (RDS, Cloud SQL, AlloyDB, Azure Flexible Server) gives the customer a
//! database owner that is not a superuser, and creates extensions as the provider's
//! administrator. A restore there must not issue what only a superuser or an object's owner
//! may: an extension (or the `public` schema) that the target already has and that belongs to
//! another role is left as found, neither created nor commented; a missing extension must be
//! one the role may create; every role that policies (always), owners or grants (when asked
//! for) name must exist, and owners must be roles the restoring role may give objects to.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::Client;

use crate::error::PgError;
use crate::schema::{Incompatibility, ObjectKind, RenderOptions, SchemaDump};
use crate::sql::query_err;

/// The outcome of the privilege checks.
#[derive(Debug, Default)]
pub(crate) struct Privileges {
    /// Identities of objects to render as nothing (see [`RenderOptions::leave_as_found`]).
    pub leave_as_found: BTreeSet<String>,
    /// The report's one line about what was left as found, if anything was.
    pub note: Option<String>,
    /// What the target cannot do for this restore.
    pub problems: Vec<Incompatibility>,
}

/// An extension installed on the target.
struct Installed {
    schema: String,
    owner: String,
    /// The restoring role has its owner's privileges (or is a superuser).
    owned: bool,
}

/// Reads the restoring role's rights and the target's extensions and roles, and decides.
pub(crate) async fn check(
    client: &Client,
    dump: &SchemaDump,
    render: &RenderOptions,
    server_version_num: i32,
) -> Result<Privileges, PgError> {
    const ROLE: &str = "reading the restoring role's privileges";
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper, \
                    pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE') \
             FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(query_err(ROLE))?;
    let role: String = row.try_get(0).map_err(query_err(ROLE))?;
    let superuser: bool = row.try_get(1).map_err(query_err(ROLE))?;
    let create_in_database: bool = row.try_get(2).map_err(query_err(ROLE))?;

    const EXT: &str = "listing the target's installed extensions";
    let mut installed = HashMap::new();
    for r in client
        .query(
            "SELECT x.extname::text, n.nspname::text, pg_catalog.pg_get_userbyid(x.extowner)::text, \
                    pg_catalog.pg_has_role(x.extowner, 'USAGE') \
             FROM pg_catalog.pg_extension x JOIN pg_catalog.pg_namespace n ON n.oid = x.extnamespace",
            &[],
        )
        .await
        .map_err(query_err(EXT))?
    {
        let name: String = r.try_get(0).map_err(query_err(EXT))?;
        installed.insert(
            name,
            Installed {
                schema: r.try_get(1).map_err(query_err(EXT))?,
                owner: r.try_get(2).map_err(query_err(EXT))?,
                owned: r.try_get(3).map_err(query_err(EXT))?,
            },
        );
    }

    // Whether the role may create each available extension: superusers may create any;
    // others those that need no superuser or (13+) are trusted, with CREATE on the database.
    const AVAIL: &str = "reading which extensions the restoring role may create";
    let trusted = if server_version_num >= 130_000 {
        "v.trusted"
    } else {
        "false"
    };
    let mut creatable = HashMap::new();
    for r in client
        .query(
            &format!(
                "SELECT e.name::text, v.superuser, {trusted} \
                 FROM pg_catalog.pg_available_extensions e \
                 JOIN pg_catalog.pg_available_extension_versions v \
                   ON v.name = e.name AND v.version = e.default_version"
            ),
            &[],
        )
        .await
        .map_err(query_err(AVAIL))?
    {
        let name: String = r.try_get(0).map_err(query_err(AVAIL))?;
        let needs_superuser: bool = r.try_get(1).map_err(query_err(AVAIL))?;
        let trusted: bool = r.try_get(2).map_err(query_err(AVAIL))?;
        creatable.insert(
            name,
            superuser || (create_in_database && (!needs_superuser || trusted)),
        );
    }

    let mut out = Privileges::default();
    let mut left: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for o in dump.objects.iter().filter(|o| o.kind == ObjectKind::Extension) {
        let Some(ext) = dump.extensions.iter().find(|e| e.name == o.name) else {
            continue;
        };
        match installed.get(&ext.name) {
            Some(found) if found.schema != ext.schema => {
                out.problems.push(Incompatibility::ExtensionInOtherSchema {
                    name: ext.name.clone(),
                    source_schema: ext.schema.clone(),
                    target_schema: found.schema.clone(),
                });
            }
            Some(found) if !found.owned => {
                out.leave_as_found.insert(o.identity.clone());
                left.entry(found.owner.clone())
                    .or_default()
                    .push(ext.name.clone());
            }
            Some(_) => {}
            // Optional extensions are created inside a block that tolerates failure; an
            // unavailable one is reported by the availability check.
            None if crate::schema::is_optional_extension(&ext.name) => {}
            None => {
                if creatable.get(&ext.name) == Some(&false) {
                    out.problems.push(Incompatibility::ExtensionNotCreatable {
                        name: ext.name.clone(),
                        schema: ext.schema.clone(),
                        role: role.clone(),
                    });
                }
            }
        }
    }

    // `public` exists in every database; only its owner (pg_database_owner from 15 on, the
    // bootstrap superuser before) may comment on it.
    const PUBLIC: &str = "reading the owner of schema public";
    if let Some(public) = dump
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::Schema && o.name == "public" && !o.sql.is_empty())
    {
        let row = client
            .query_opt(
                "SELECT pg_catalog.pg_has_role(n.nspowner, 'USAGE'), \
                        pg_catalog.pg_get_userbyid(n.nspowner)::text \
                 FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'",
                &[],
            )
            .await
            .map_err(query_err(PUBLIC))?;
        if let Some(row) = row {
            let owned: bool = row.try_get(0).map_err(query_err(PUBLIC))?;
            if !owned {
                out.leave_as_found.insert(public.identity.clone());
                let owner: String = row.try_get(1).map_err(query_err(PUBLIC))?;
                left.entry(owner).or_default().push("schema public".into());
            }
        }
    }
    if !left.is_empty() {
        let owners: Vec<String> = left
            .iter()
            .map(|(owner, names)| format!("{} (owned by {owner})", names.join(", ")))
            .collect();
        out.note = Some(format!(
            "left as found on the target, because role {role} does not own them: {}; they were \
             neither re-created nor re-commented",
            owners.join("; ")
        ));
    }

    check_roles(
        client,
        dump,
        render,
        &out.leave_as_found,
        &role,
        &mut out.problems,
    )
    .await?;
    Ok(out)
}

/// Roles the rendered DDL names: each with the first object that needs it, and whether it is
/// needed as an owner.
fn required_roles(
    dump: &SchemaDump,
    render: &RenderOptions,
    leave_as_found: &BTreeSet<String>,
) -> BTreeMap<String, (String, bool)> {
    let mut out: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let map = |r: &str| crate::schema::mapped_role(&render.role_map, r).to_string();
    for o in dump
        .objects
        .iter()
        .filter(|o| !leave_as_found.contains(&o.identity))
    {
        let mut named: Vec<(String, bool)> = o.roles.iter().flatten().map(|r| (map(r), false)).collect();
        if render.include_owners && o.alter_target.is_some() {
            named.extend(o.owner.as_deref().map(|r| (map(r), true)));
        }
        if render.include_acl && o.grant_target.is_some() {
            named.extend(
                o.acl
                    .iter()
                    .filter_map(|a| a.grantee.as_deref())
                    .map(|r| (map(r), false)),
            );
        }
        for (role, as_owner) in named {
            let entry = out.entry(role).or_insert_with(|| (o.identity.clone(), false));
            entry.1 |= as_owner;
        }
    }
    out
}

async fn check_roles(
    client: &Client,
    dump: &SchemaDump,
    render: &RenderOptions,
    leave_as_found: &BTreeSet<String>,
    restoring_role: &str,
    problems: &mut Vec<Incompatibility>,
) -> Result<(), PgError> {
    let required = required_roles(dump, render, leave_as_found);
    if required.is_empty() {
        return Ok(());
    }
    const ROLES: &str = "checking the roles that owners, grants and policies name";
    let names: Vec<&str> = required.keys().map(String::as_str).collect();
    let mut member = HashMap::new();
    for r in client
        .query(
            "SELECT r.rolname::text, pg_catalog.pg_has_role(r.oid, 'MEMBER') \
             FROM pg_catalog.pg_roles r WHERE r.rolname = ANY($1)",
            &[&names],
        )
        .await
        .map_err(query_err(ROLES))?
    {
        let name: String = r.try_get(0).map_err(query_err(ROLES))?;
        member.insert(name, r.try_get::<_, bool>(1).map_err(query_err(ROLES))?);
    }
    for (role, (needed_by, as_owner)) in required {
        match member.get(&role) {
            None => problems.push(Incompatibility::MissingRole { role, needed_by }),
            Some(false) if as_owner => problems.push(Incompatibility::CannotAssignOwner {
                role,
                restoring_role: restoring_role.to_string(),
            }),
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::schema::{AclEntry, SchemaObject, Section};

    fn object(kind: ObjectKind, identity: &str) -> SchemaObject {
        SchemaObject {
            kind,
            schema: "public".into(),
            name: identity.into(),
            identity: identity.into(),
            section: Section::PreData,
            sql: String::new(),
            depends_on: vec![],
            owner: None,
            acl: vec![],
            alter_target: None,
            grant_target: None,
            min_server_version: 120000,
            table: None,
            roles: vec![],
            roles_at: None,
        }
    }

    #[test]
    fn policies_always_and_owners_and_grants_on_request_name_roles_through_the_map() {
        let mut table = object(ObjectKind::Table, "table public.t");
        table.owner = Some("sg_old".into());
        table.alter_target = Some("TABLE public.t".into());
        table.grant_target = Some("TABLE public.t".into());
        table.acl = vec![AclEntry {
            grantee: Some("reader".into()),
            privilege: "SELECT".into(),
            grantable: false,
        }];
        let mut policy = object(ObjectKind::Policy, "policy public.t.p");
        policy.roles = vec![None, Some("tenant".into())];
        let dump = SchemaDump {
            server_version_num: 160000,
            objects: vec![table, policy],
            tables: vec![],
            sequences: vec![],
            extensions: vec![],
        };
        let none = BTreeSet::new();
        let plain = required_roles(&dump, &RenderOptions::default(), &none);
        assert_eq!(
            plain.into_iter().collect::<Vec<_>>(),
            vec![("tenant".to_string(), ("policy public.t.p".to_string(), false))]
        );
        let mut render = RenderOptions {
            include_owners: true,
            include_acl: true,
            ..RenderOptions::default()
        };
        render.role_map.insert("sg_old".into(), "sg_new".into());
        let all = required_roles(&dump, &render, &none);
        assert_eq!(all.keys().collect::<Vec<_>>(), vec!["reader", "sg_new", "tenant"]);
        assert!(all["sg_new"].1, "the owner is needed as an owner");
        assert!(!all["reader"].1);
        let left: BTreeSet<String> = ["policy public.t.p".to_string()].into();
        assert!(!required_roles(&dump, &render, &left).contains_key("tenant"));
    }
}
