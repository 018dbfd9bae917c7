//! Creating and starting a cluster: initdb, configuration, `pg_ctl start` on a free port.

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::user::Runner;
use super::{ClusterOptions, PgBinaries, PgCluster};
use crate::error::{HarnessError, Result};
use crate::process::{run_checked, tail};

/// Ports handed out by this process, so two clusters started at once never race for one port.
static PORTS_IN_USE: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// How many times `pg_ctl start` is retried on a new port when the port was taken meanwhile.
const PORT_ATTEMPTS: usize = 8;

/// File in the data directory holding the harness' settings, included from postgresql.conf.
const CONF_FILE: &str = "testkit.conf";

/// Runs initdb and starts the server; blocking. On error the partly built cluster is dropped,
/// which stops whatever was started and removes the directory.
pub(super) fn start_blocking(binaries: PgBinaries, options: ClusterOptions) -> Result<PgCluster> {
    let runner = Runner::prepare()?;
    let dir = tempfile::Builder::new()
        .prefix("sgb-pg-")
        .tempdir()
        .map_err(|source| HarnessError::Io {
            what: "creating the cluster's temporary directory",
            path: std::env::temp_dir(),
            source,
        })?;
    let root = dir.path().to_path_buf();
    runner.chown(&root)?;
    runner.ensure_can_run(binaries.bin_dir(), &root)?;
    let socket_dir = root.join("sock");
    std::fs::create_dir(&socket_dir).map_err(|source| HarnessError::Io {
        what: "creating the socket directory",
        path: socket_dir.clone(),
        source,
    })?;
    runner.chown(&socket_dir)?;

    let mut cluster = PgCluster {
        major: binaries.major(),
        binaries,
        runner,
        port: 0,
        data_dir: root.join("data"),
        log_path: root.join("server.log"),
        socket_dir,
        postmaster_pid: None,
        started: false,
        dir: Some(dir),
    };
    initdb(&cluster)?;
    write_base_conf(&cluster, &options)?;
    for attempt in 1..=PORT_ATTEMPTS {
        let port = reserve_port(&cluster)?;
        cluster.port = port;
        let log_offset = std::fs::metadata(&cluster.log_path).map(|m| m.len()).unwrap_or(0);
        cluster.started = true;
        let mut cmd = cluster.runner.command(&cluster.binaries.program("pg_ctl"));
        cmd.arg("-D")
            .arg(&cluster.data_dir)
            .arg("-l")
            .arg(&cluster.log_path)
            .args(["-w", "-t", "120", "start", "-o"])
            .arg(format!("-p {port}"))
            .current_dir(&root);
        match run_checked(&mut cmd) {
            Ok(_) => {
                cluster.postmaster_pid = read_postmaster_pid(&cluster.data_dir);
                return Ok(cluster);
            }
            Err(err) => {
                let log = read_log_from(&cluster.log_path, log_offset);
                // Make sure a half-started server does not linger before the next attempt.
                cluster.postmaster_pid = read_postmaster_pid(&cluster.data_dir);
                let _ = cluster.shutdown();
                let port_clash = log.contains("could not bind")
                    || log.contains("Address already in use")
                    || log.contains("could not create any TCP/IP sockets");
                if port_clash && attempt < PORT_ATTEMPTS {
                    continue;
                }
                return Err(cluster.startup_error(format!("{err}")));
            }
        }
    }
    Err(cluster.startup_error("no free port found".into()))
}

/// initdb with the C.UTF-8 locale, falling back to `--no-locale` where the server (or the OS)
/// does not accept it.
fn initdb(cluster: &PgCluster) -> Result<()> {
    let run = |locale_args: &[&str]| {
        let mut cmd = cluster.runner.command(&cluster.binaries.program("initdb"));
        cmd.arg("-D")
            .arg(&cluster.data_dir)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .args(locale_args)
            .current_dir(cluster.root());
        run_checked(&mut cmd)
    };
    match run(&["--locale=C.UTF-8"]) {
        Ok(_) => Ok(()),
        Err(first) => {
            if cluster.data_dir.exists() {
                std::fs::remove_dir_all(&cluster.data_dir).map_err(|source| HarnessError::Io {
                    what: "removing a failed initdb's data directory",
                    path: cluster.data_dir.clone(),
                    source,
                })?;
            }
            run(&["--no-locale"])
                .map(|_| ())
                .map_err(|second| HarnessError::CommandFailed {
                    command: "initdb".into(),
                    status: "failed with --locale=C.UTF-8 and with --no-locale".into(),
                    output: format!("{first}\n{second}"),
                })
        }
    }
}

/// Appends an include of [`CONF_FILE`] to postgresql.conf and writes the settings there.
fn write_base_conf(cluster: &PgCluster, options: &ClusterOptions) -> Result<()> {
    let mut settings: Vec<(String, String)> = vec![
        ("listen_addresses".into(), "127.0.0.1".into()),
        (
            "unix_socket_directories".into(),
            cluster.socket_dir.display().to_string(),
        ),
        ("max_connections".into(), "100".into()),
    ];
    if !options.durable {
        for (name, value) in [
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
        ] {
            settings.push((name.into(), value.into()));
        }
    }
    settings.extend(options.settings.iter().cloned());
    let mut text = String::from("# written by sourcegraph-backup-testkit\n");
    for (name, value) in &settings {
        text.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
    }
    let conf = cluster.data_dir.join(CONF_FILE);
    std::fs::write(&conf, text).map_err(|source| HarnessError::Io {
        what: "writing the harness settings",
        path: conf.clone(),
        source,
    })?;
    cluster.runner.chown(&conf)?;
    let main_conf = cluster.data_dir.join("postgresql.conf");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&main_conf)
        .and_then(|mut f| {
            writeln!(f, "\ninclude '{CONF_FILE}'")?;
            Ok(f)
        })
        .map_err(|source| HarnessError::Io {
            what: "appending to postgresql.conf",
            path: main_conf.clone(),
            source,
        })?;
    file.flush().map_err(|source| HarnessError::Io {
        what: "appending to postgresql.conf",
        path: main_conf,
        source,
    })
}

/// A loopback port that was free a moment ago and that this process has not handed out.
fn reserve_port(cluster: &PgCluster) -> Result<u16> {
    let mut ports = PORTS_IN_USE.lock().unwrap_or_else(|p| p.into_inner());
    let ports = ports.get_or_insert_with(HashSet::new);
    for _ in 0..64 {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| HarnessError::Io {
            what: "binding 127.0.0.1:0 to find a free port",
            path: cluster.data_dir.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| HarnessError::Io {
                what: "reading the port bound on 127.0.0.1:0",
                path: cluster.data_dir.clone(),
                source,
            })?
            .port();
        if ports.insert(port) {
            return Ok(port);
        }
    }
    Err(cluster.startup_error("no free loopback port".into()))
}

/// Forgets a port handed out by [`reserve_port`].
pub(super) fn release_port(port: u16) {
    if let Some(ports) = PORTS_IN_USE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        ports.remove(&port);
    }
}

/// The postmaster's pid: first line of `postmaster.pid`.
pub(super) fn read_postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// The server log from byte `offset` on (lossy).
fn read_log_from(path: &PathBuf, offset: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// The last lines of the server log.
pub(super) fn log_tail(path: &Path) -> String {
    tail(&read_log_from(&path.to_path_buf(), 0), 25)
}
