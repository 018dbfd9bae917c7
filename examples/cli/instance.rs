//! The stores of a whole instance's databases and configuration, shared by
//! `postgres_only` and `all_data`.

use sourcegraph_backup::core::plan::unit_ids;
use sourcegraph_backup::core::{BackupManifest, Plan, StoreKind};
use sourcegraph_backup::pg::DatabaseRole;

use super::args::{PgBackupArgs, PgRestoreArgs};
use super::stores::{self, StoreHandle, Tuning};
use super::{Error, Usage};

fn flag_of(role: DatabaseRole) -> &'static str {
    match role {
        DatabaseRole::Frontend => "--pgsql",
        DatabaseRole::CodeIntel => "--codeintel",
        DatabaseRole::CodeInsights => "--codeinsights",
    }
}

/// The database and configuration stores the plan includes. Every included
/// database needs a connection; configuration defaults to the main database.
pub fn backup_stores(args: &PgBackupArgs, plan: &Plan) -> Result<Vec<StoreHandle>, Error> {
    let tuning = Tuning {
        jobs: args.jobs.get(),
        allow_generic: args.tuning.allow_generic,
        overwrite: false,
    };
    let mut out = Vec::new();
    for role in DatabaseRole::ALL {
        if !plan.includes(role.store_id()) {
            continue;
        }
        match stores::connection(&args.databases, role)? {
            Some(conn) => out.push(stores::database(role, conn, tuning)),
            None => {
                return Err(Usage(format!(
                    "the backup includes {}: give {} URL or --from-env, or leave it out with --external {}",
                    role.store_id(),
                    flag_of(role),
                    role.store_id()
                ))
                .into())
            }
        }
    }
    if plan.includes(unit_ids::CONFIG) {
        match stores::config_place(&args.config, &args.databases)? {
            // The database dumps carry the same ciphertext: so may the configuration store.
            Some(place) => out.push(stores::config(place, false, true)?),
            None => {
                return Err(Usage(
                    "the backup includes the configuration: give --config-db URL or --config-files DIR (or --pgsql)".into(),
                )
                .into())
            }
        }
    }
    Ok(out)
}

/// The targets given for the stores of `manifest`: databases by URL or
/// environment, configuration into `--config-db`/`--config-files` or the main
/// database target. Stores without a target are not restored.
pub fn restore_stores(args: &PgRestoreArgs, manifest: &BackupManifest) -> Result<Vec<StoreHandle>, Error> {
    let tuning = Tuning {
        jobs: args.jobs.get(),
        allow_generic: true,
        overwrite: args.clean.clean,
    };
    let mut out = Vec::new();
    // A dry run only shows what the configuration restore would change.
    for role in DatabaseRole::ALL.into_iter().filter(|_| !args.dry_run.dry_run) {
        let Some(conn) = stores::connection(&args.databases, role)? else {
            continue;
        };
        if manifest
            .store(role.store_id())
            .is_some_and(|s| s.kind == StoreKind::Postgres)
        {
            out.push(stores::database(role, conn, tuning));
        } else if !args.databases.from_env {
            return Err(Usage(format!(
                "backup {} holds no database {}: drop {}",
                manifest.backup_id,
                role.store_id(),
                flag_of(role)
            ))
            .into());
        }
    }
    if manifest.store(unit_ids::CONFIG).is_some() {
        if let Some(place) = stores::config_place(&args.config, &args.databases)? {
            out.push(stores::config(place, args.dry_run.dry_run, true)?);
        }
    }
    Ok(out)
}
