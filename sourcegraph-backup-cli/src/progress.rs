//! Progress while a backup or restore runs, on stderr: bars on a terminal, plain lines
//! otherwise, or one JSON object per event (`--progress json`). Fed from the library's
//! [`ProgressSink`] channel: library code never prints.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;
use sourcegraph_backup::core::{ProgressEvent, ProgressSink};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::out;

/// How often the plain-line display reports bytes of a running store.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// `--progress`: how progress is shown on stderr.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Bars on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// One bar per store.
    Bars,
    /// Plain lines: a store started, bytes every 5 seconds, done or failed.
    Lines,
    /// One JSON object per event, one per line (`event`, `store`, ..., `elapsed_seconds`).
    Json,
    /// Nothing.
    None,
}

/// The running display; [`Progress::finish`] waits for it to drain.
pub struct Progress {
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a display for `verb` ("backup", "restore") and returns the sink to hand to the
    /// library.
    pub fn start(mode: Mode, verb: &'static str) -> (ProgressSink, Progress) {
        let mode = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Bars,
            Mode::Auto => Mode::Lines,
            other => other,
        };
        if mode == Mode::None {
            return (ProgressSink::disabled(), Progress { task: None });
        }
        let (sink, rx) = ProgressSink::channel();
        let task = match mode {
            Mode::Bars => tokio::spawn(bars(rx)),
            Mode::Json => tokio::spawn(json(rx)),
            _ => tokio::spawn(lines(rx, verb)),
        };
        (sink, Progress { task: Some(task) })
    }

    /// Waits until every event was shown (the library dropped its sinks), at most a moment:
    /// a sink kept alive elsewhere must not hang the program.
    pub async fn finish(self) {
        if let Some(mut task) = self.task {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

/// One `--progress json` line.
#[derive(Serialize)]
struct JsonEvent<'a> {
    #[serde(flatten)]
    event: &'a ProgressEvent,
    elapsed_seconds: f64,
}

async fn json(mut rx: UnboundedReceiver<ProgressEvent>) {
    let started = Instant::now();
    while let Some(event) = rx.recv().await {
        let line = JsonEvent {
            event: &event,
            elapsed_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        };
        if let Ok(text) = out::json_line(&line) {
            eprintln!("{text}");
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
}

async fn bars(mut rx: UnboundedReceiver<ProgressEvent>) {
    let multi = MultiProgress::new();
    let running =
        style("{spinner:.cyan} {prefix:<18} {bytes:>10} {binary_bytes_per_sec:>12} {elapsed:>4} {wide_msg}");
    let sized = style("{spinner:.cyan} {prefix:<18} [{bar:24}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {elapsed:>4} {wide_msg}");
    let done = style("  {prefix:<18} {bytes:>10} {elapsed:>4} {wide_msg}");
    let mut bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
    while let Some(event) = rx.recv().await {
        match event {
            ProgressEvent::StoreStarted { store, total_bytes } => {
                let bar = multi.add(ProgressBar::new(total_bytes.unwrap_or(0)));
                bar.set_style(if total_bytes.is_some() {
                    sized.clone()
                } else {
                    running.clone()
                });
                bar.set_prefix(store.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(store, bar);
            }
            ProgressEvent::Bytes { store, bytes } => {
                if let Some(bar) = bars.get(&store) {
                    bar.inc(bytes);
                }
            }
            ProgressEvent::Rows { store, table, .. } => {
                if let Some(bar) = bars.get(&store) {
                    bar.set_message(out::redact(&table));
                }
            }
            ProgressEvent::ArtifactCommitted { store, path, .. } => {
                if let Some(bar) = bars.get(&store) {
                    bar.set_message(out::redact(&path));
                }
            }
            ProgressEvent::Warning { store, message } => {
                let _ = multi.println(out::redact(&format!("warning: {store}: {message}")));
            }
            ProgressEvent::StoreFinished { store, error } => {
                if let Some(bar) = bars.get(&store) {
                    bar.set_style(done.clone());
                    bar.finish_with_message(match error {
                        None => "done".to_string(),
                        Some(e) => out::redact(&format!("FAILED: {e}")),
                    });
                }
            }
        }
    }
    for bar in bars.values() {
        if !bar.is_finished() {
            bar.abandon();
        }
    }
}

async fn lines(mut rx: UnboundedReceiver<ProgressEvent>, verb: &'static str) {
    let started = Instant::now();
    // Per store: bytes so far and when they were last reported.
    let mut seen: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
    let stamp = |started: Instant| format!("[{:>7.1}s]", started.elapsed().as_secs_f64());
    while let Some(event) = rx.recv().await {
        match event {
            ProgressEvent::StoreStarted { store, total_bytes } => {
                let total = total_bytes.map(|t| format!(" ({} expected)", HumanBytes(t)));
                out::err(format!(
                    "{} {store}: {verb} started{}",
                    stamp(started),
                    total.unwrap_or_default()
                ));
                seen.insert(store, (0, Instant::now()));
            }
            ProgressEvent::Bytes { store, bytes } => {
                if let Some((total, last)) = seen.get_mut(&store) {
                    *total += bytes;
                    if last.elapsed() >= PLAIN_INTERVAL {
                        *last = Instant::now();
                        out::err(format!(
                            "{} {store}: {} so far",
                            stamp(started),
                            HumanBytes(*total)
                        ));
                    }
                }
            }
            ProgressEvent::Warning { store, message } => {
                out::err(format!("{} {store}: warning: {message}", stamp(started)));
            }
            ProgressEvent::StoreFinished { store, error } => {
                let bytes = seen.get(&store).map_or(0, |(b, _)| *b);
                match error {
                    None => out::err(format!(
                        "{} {store}: done ({})",
                        stamp(started),
                        HumanBytes(bytes)
                    )),
                    Some(e) => out::err(format!("{} {store}: FAILED: {e}", stamp(started))),
                }
            }
            _ => {}
        }
    }
}
