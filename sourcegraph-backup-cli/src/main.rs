//! `sourcegraph-backup`: back up a Sourcegraph instance and migrate it to a new one.
//!
//! The command is built on the public API of the `sourcegraph-backup` library alone
//! ([`sourcegraph_backup::deployment`], [`sourcegraph_backup::report`]); it only turns
//! command-line flags into an [`Instance`](sourcegraph_backup::deployment::Instance), shows
//! progress, prints the typed reports (tables, or one JSON object with `--json`) and maps
//! outcomes to exit codes:
//!
//! ```text
//! sourcegraph-backup plan --option all --from-env                    # what a backup would hold, and why
//! sourcegraph-backup backup --option postgres --from-env --to s3://bucket/sourcegraph
//! sourcegraph-backup restore --from s3://bucket/sourcegraph --pgsql postgres://sg@new-db/sg
//! sourcegraph-backup compare --pgsql postgres://sg@old-db/sg --with postgres://sg@new-db/sg
//! ```
//!
//! Exit codes: 0 done, 1 failed (or differences found, or a backup needs attention), 2 bad
//! usage, 130 a backup interrupted by SIGINT or SIGTERM. Every line printed is redacted.

mod args;
mod commands;
mod out;
mod progress;
mod run;

use std::process::ExitCode;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli: Cli = run::parse();
    run::init_logging();
    let (json, name) = match &cli.command {
        Command::Backup(a) => (a.output.json, "backup"),
        Command::Restore(a) => (a.output.json, "restore"),
        Command::Verify(a) => (a.output.json, "verify"),
        Command::List(a) => (a.output.json, "list"),
        Command::Clean(a) => (a.output.json, "clean"),
        Command::Plan(a) => (a.output.json, "plan"),
        Command::Compare(a) => (a.output.json, "compare"),
        Command::Forget(a) => (a.output.json, "forget"),
    };
    run::run(json, name, async move {
        match cli.command {
            Command::Backup(a) => commands::backup(a).await,
            Command::Restore(a) => commands::restore(a).await,
            Command::Verify(a) => commands::verify(a).await,
            Command::List(a) => commands::list(a).await,
            Command::Clean(a) => commands::clean(a).await,
            Command::Plan(a) => commands::plan(a).await,
            Command::Compare(a) => commands::compare(a).await,
            Command::Forget(a) => commands::forget(a).await,
        }
    })
}
