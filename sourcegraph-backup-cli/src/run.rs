//! Parsing, logging, the runtime, and turning a command's result into an exit code.

use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde::Serialize;

use crate::args::Cli;
use crate::out;

/// Any error of a command; printed as one `error:` line plus `caused by:` lines.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The exit code of a command stopped by SIGINT (128 + 2), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A usage mistake found after parsing (e.g. a volume without a path): reported like clap's
/// own usage errors, with exit code 2.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A backup stopped by SIGINT or SIGTERM: reported in one line, exit code 130.
#[derive(Debug)]
pub struct Interrupted {
    /// The backup that was stopped.
    pub backup: String,
    /// Whether everything it wrote was removed.
    pub removed: bool,
    /// The repository, for the `clean` hint when something is left.
    pub location: String,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.removed {
            write!(f, "interrupted: backup {} removed", self.backup)
        } else {
            write!(
                f,
                "interrupted: backup {} could not be removed: run `sourcegraph-backup clean --from {}`",
                self.backup, self.location
            )
        }
    }
}

impl std::error::Error for Interrupted {}

/// A command that failed after doing part of its work: its result (what was done, what
/// failed, what was not started) is printed with the error.
#[derive(Debug)]
pub struct PartlyDone {
    /// What was done, as printed (`Display`) and as JSON.
    pub text: String,
    /// The same as JSON.
    pub json: serde_json::Value,
    /// The error's first line: what failed and how to finish the work.
    pub message: String,
    /// The failure.
    pub source: Error,
}

impl PartlyDone {
    /// A failure after `done`.
    pub fn new<T: Serialize + std::fmt::Display>(done: &T, message: String, source: Error) -> Self {
        PartlyDone {
            text: done.to_string(),
            json: serde_json::to_value(done).unwrap_or_default(),
            message,
            source,
        }
    }
}

impl std::fmt::Display for PartlyDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PartlyDone {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// Parses the command line. Help and version are printed as clap prints them; usage errors
/// are printed redacted (they can quote a value given on the command line), exit 2.
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => exit_with(e),
    }
}

/// Prints a clap error (redacted, unless it is help or version output) and exits with its code.
fn exit_with(e: clap::Error) -> ! {
    if e.use_stderr() {
        eprint!("{}", out::redact(&e.render().to_string()));
        std::process::exit(e.exit_code())
    }
    e.exit()
}

/// Logs through `tracing` to stderr, redacted, when `RUST_LOG` asks for them (e.g.
/// `RUST_LOG=debug`, `RUST_LOG=sourcegraph_backup=debug,object_store=debug`). Without
/// `RUST_LOG` nothing is logged: stderr carries progress and errors only.
pub fn init_logging() {
    let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(out::RedactingStderr::default)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs `command` on a multi-threaded runtime and turns its result into the exit code: 0
/// success, 1 failure (one `error:` line plus `caused by:` lines), 2 bad usage, 130 a backup
/// interrupted by a signal (one line). A panic is reported as an internal error, exit 1,
/// without a backtrace.
pub fn run<F>(json: bool, name: &str, command: F) -> ExitCode
where
    F: Future<Output = Result<bool, Error>>,
{
    std::panic::set_hook(Box::new(|info| {
        out::err(format!("error: internal error: {info}"));
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&e, json),
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(command)));
    // Background tasks (progress, cancelled stores) must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(e)) => {
            if let Some(Usage(msg)) = e.downcast_ref::<Usage>() {
                let mut cmd = Cli::command();
                cmd.build();
                let mut usage = cmd.find_subcommand(name).cloned().unwrap_or(cmd);
                exit_with(usage.error(clap::error::ErrorKind::MissingRequiredArgument, msg))
            }
            if let Some(i) = e.downcast_ref::<Interrupted>() {
                return interrupted(i, json);
            }
            fail(e.as_ref(), json)
        }
        Err(_) => ExitCode::FAILURE, // the hook printed it
    }
}

/// Prints the one line of an interrupted backup; with `--json` also one object on stdout.
fn interrupted(i: &Interrupted, json: bool) -> ExitCode {
    out::err(i.to_string());
    if json {
        out::json(&serde_json::json!({
            "command": "backup", "ok": false, "interrupted": true, "backup_id": i.backup,
            "removed": i.removed, "error": i.to_string(),
        }));
    }
    ExitCode::from(EXIT_INTERRUPTED)
}

/// Prints an error and its source chain, redacted; with `--json` also one object on stdout.
fn fail(e: &(dyn std::error::Error + 'static), json: bool) -> ExitCode {
    let top = e.to_string();
    let mut causes: Vec<String> = Vec::new();
    let mut seen = top.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // Errors that already print their source in their own message would repeat it.
        if !seen.contains(&text) {
            seen.push_str(&text);
            causes.push(text);
        }
        source = s.source();
    }
    let partly = e.downcast_ref::<PartlyDone>();
    if let (Some(p), false) = (partly, json) {
        out::line(&p.text);
    }
    out::err(format!("error: {top}"));
    for c in &causes {
        out::err(format!("  caused by: {c}"));
    }
    if json {
        // One object on stdout: what was done, when something was.
        let mut out = partly
            .map(|p| p.json.clone())
            .unwrap_or_else(|| serde_json::json!({}));
        if let Some(o) = out.as_object_mut() {
            o.insert("ok".into(), false.into());
            o.insert("error".into(), top.into());
            o.insert("causes".into(), causes.into());
        }
        out::json(&out);
    }
    ExitCode::FAILURE
}
