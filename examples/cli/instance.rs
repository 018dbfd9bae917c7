//! The stores of a whole instance's databases and configuration, shared by
//! `postgres_only` and `all_data`.

use sourcegraph_backup::core::plan::unit_ids;
use sourcegraph_backup::core::{plan, BackupReader, Plan, PlanRequest, StoreKind};
use sourcegraph_backup::pg::schema::RenderOptions;
use sourcegraph_backup::pg::DatabaseRole;

use super::args::{PgBackupArgs, PgRestoreArgs};
use super::stores::{self, ConfigPlace, StoreHandle, Tuning};
use super::{Error, Targets, Usage};

fn flag_of(role: DatabaseRole) -> &'static str {
    match role {
        DatabaseRole::Frontend => "--pgsql",
        DatabaseRole::CodeIntel => "--codeintel",
        DatabaseRole::CodeInsights => "--codeinsights",
    }
}

/// Plans a backup of what the command line gives: a database without a
/// connection (no URL option, no `--from-env`) and configuration without a
/// source are left out of the plan with that reason, except what is not
/// recreatable (the main database, the configuration while the main database
/// is backed up): that is refused, naming the flag to add. Returns the plan
/// and the stores it includes.
pub fn backup_plan(args: &PgBackupArgs, mut request: PlanRequest) -> Result<(Plan, Vec<StoreHandle>), Error> {
    let tuning = Tuning {
        jobs: args.jobs.get(),
        allow_generic: args.tuning.allow_generic,
        ..Tuning::default()
    };
    let mut given = Vec::new();
    for role in DatabaseRole::ALL {
        match stores::connection(&args.databases, role)? {
            Some(conn) => given.push((role, conn)),
            None => {
                request.not_given.insert(role.store_id().to_string());
            }
        }
    }
    let config = stores::config_place(&args.config, &args.databases)?;
    if config.is_none() {
        request.not_given.insert(unit_ids::CONFIG.to_string());
    }
    let plan = plan(&request);
    let missing: Vec<String> = plan
        .not_given()
        .map(|s| match s.id.as_str() {
            unit_ids::PGSQL => format!(
                "{} (the main database, not recreatable): give --pgsql URL or --from-env, or leave it out with --external pgsql",
                s.id
            ),
            unit_ids::CONFIG => format!(
                "{} (the configuration, not recreatable): give --config-db URL or --config-files DIR, or leave it out with --external config",
                s.id
            ),
            other => format!("{other}: give its location, or leave it out with --external {other}"),
        })
        .collect();
    if !missing.is_empty() {
        return Err(Usage(format!("the backup needs {}", missing.join("; "))).into());
    }
    let mut out = Vec::new();
    for (role, conn) in given {
        if plan.includes(role.store_id()) {
            out.push(stores::database(role, conn, tuning, RenderOptions::default()));
        }
    }
    if plan.includes(unit_ids::CONFIG) {
        if let Some(place) = config {
            // The database dumps carry the same ciphertext: so may the configuration store.
            out.push(stores::config(place, false, true)?);
        }
    }
    Ok((plan, out))
}

/// Says why nothing is backed up when the plan includes no store.
pub fn nothing_to_back_up(plan: &Plan) -> Result<(), Error> {
    if plan.included_stores().next().is_some() {
        return Ok(());
    }
    Err(Usage(
        "nothing to back up: every store is left out; give --pgsql, --codeintel or --codeinsights URL, or --from-env"
            .into(),
    )
    .into())
}

/// The targets given for the stores of `manifest`: databases by URL or
/// environment, configuration into `--config-db` or `--config-files`.
/// Configuration is not re-applied into a restored main database: its dump
/// already holds it. Stores without a target are not restored, with their
/// reason; the error of a failed configuration step names `config_only
/// restore` to re-run it alone.
pub fn restore_targets(args: &PgRestoreArgs, backup: &BackupReader) -> Result<Targets, Error> {
    let manifest = backup.manifest();
    let tuning = Tuning {
        jobs: args.jobs.get(),
        allow_generic: true,
        overwrite: args.clean.clean,
        force: args.clean.force,
    };
    let render = args.roles.render_options().map_err(Usage)?;
    let mut targets = Targets::default();
    let mut pgsql_restored = false;
    // A dry run only shows what the configuration restore would change.
    for role in DatabaseRole::ALL {
        let Some(conn) = stores::connection(&args.databases, role)? else {
            continue;
        };
        if manifest
            .store(role.store_id())
            .is_some_and(|s| s.kind == StoreKind::Postgres)
        {
            if args.dry_run.dry_run {
                targets.reasons.insert(
                    role.store_id().to_string(),
                    "dry run: only the configuration restore is shown".into(),
                );
                continue;
            }
            pgsql_restored |= role == DatabaseRole::Frontend;
            targets
                .stores
                .push(stores::database(role, conn, tuning, render.clone()));
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
        let explicit = args.config.config_db.is_some() || args.config.config_files.is_some();
        // A dry run restores no database: it shows what the configuration of
        // the --pgsql target would become.
        let place = if explicit || args.dry_run.dry_run {
            stores::config_place(&args.config, &args.databases)?
        } else {
            None
        };
        match place {
            Some(place) => {
                let again = match &place {
                    ConfigPlace::Database(_) => "--config-db URL".to_string(),
                    ConfigPlace::Files(dir) => format!("--config-files {}", dir.display()),
                };
                targets.rerun.insert(
                    unit_ids::CONFIG.to_string(),
                    format!(
                        "config_only restore --from {} --backup {} {again}",
                        backup.repository().location(),
                        manifest.backup_id
                    ),
                );
                targets.stores.push(stores::config_into(
                    place,
                    args.dry_run.dry_run,
                    true,
                    args.clean.clean,
                )?);
            }
            None if pgsql_restored => {
                targets.reasons.insert(
                    unit_ids::CONFIG.to_string(),
                    "the restored pgsql database already holds it; give --config-db URL or --config-files DIR to apply it elsewhere too".into(),
                );
            }
            None => {}
        }
    }
    Ok(targets)
}
