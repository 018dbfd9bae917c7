//! Loopback servers run as child processes (moto, Azurite): start on a free port, wait until
//! they answer HTTP, kill on drop; and the error type of the object-storage servers.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a fresh server may take to answer HTTP.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What can go wrong with an object-storage server (moto, Azurite) or the cutting proxy.
#[derive(Debug, thiserror::Error)]
pub enum ObjectServerError {
    /// The server program is not installed.
    #[error("{server} not found at {path}; install it with `bash scripts/install-test-deps.sh` from the repository root ({how})")]
    NotInstalled {
        /// Which server.
        server: &'static str,
        /// Where it was looked for.
        path: PathBuf,
        /// What the install script does for it.
        how: &'static str,
    },
    /// A socket, file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The server did not come up.
    #[error("{server} on port {port} did not start: {reason}; its log {log} ends with:\n{tail}")]
    Startup {
        /// Which server.
        server: &'static str,
        /// Its port (0 when none was chosen).
        port: u16,
        /// Why it is considered failed.
        reason: String,
        /// Path of its log.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// The process-wide server could not be started (the first attempt's error, as text).
    #[error("the shared {server} is unavailable: {reason}")]
    Shared {
        /// Which server.
        server: &'static str,
        /// Why it failed to start.
        reason: String,
    },
    /// A request to the server was answered with an unexpected status.
    #[error("{request} answered {status}")]
    Request {
        /// What was asked.
        request: String,
        /// The status.
        status: String,
    },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ObjectServerError {
    let what = what.into();
    move |source| ObjectServerError::Io { what, source }
}

/// A server child process on `127.0.0.1:<port>`, killed on drop; its output goes to a log file
/// in a temporary directory that is also its working directory.
#[derive(Debug)]
pub(crate) struct Daemon {
    server: &'static str,
    port: u16,
    child: Mutex<Option<Child>>,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `program` with the arguments `args(port)` for a free port and waits until it
    /// answers HTTP. With `die_with_thread`, the kernel kills it when the calling thread ends.
    pub(crate) async fn start(
        server: &'static str,
        program: &Path,
        args: impl Fn(u16) -> Vec<String>,
        die_with_thread: bool,
    ) -> Result<Self, ObjectServerError> {
        let mut last = None;
        // A free port can be taken between probing and binding: try a few.
        for _ in 0..3 {
            match Self::try_start(server, program, &args, die_with_thread).await {
                Ok(d) => return Ok(d),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ObjectServerError::Startup {
            server,
            port: 0,
            reason: "no attempt made".into(),
            log: PathBuf::new(),
            tail: String::new(),
        }))
    }

    async fn try_start(
        server: &'static str,
        program: &Path,
        args: &impl Fn(u16) -> Vec<String>,
        die_with_thread: bool,
    ) -> Result<Self, ObjectServerError> {
        let port = free_port()?;
        let dir = tempfile::Builder::new()
            .prefix("sgb-objsrv-")
            .tempdir()
            .map_err(io(format!("creating a directory for {server}")))?;
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).map_err(io(format!("creating {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(io("duplicating the log handle"))?;
        let mut cmd = Command::new(program);
        cmd.args(args(port))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        if die_with_thread {
            set_parent_death_signal(&mut cmd);
        }
        let child = cmd
            .spawn()
            .map_err(io(format!("starting {}", program.display())))?;
        let daemon = Daemon {
            server,
            port,
            child: Mutex::new(Some(child)),
            dir,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = daemon.exit_status() {
                return Err(daemon.startup_error(format!("it exited with {status}")));
            }
            if http(daemon.addr(), "GET", "/").await.is_ok() {
                return Ok(daemon);
            }
            if Instant::now() > deadline {
                return Err(daemon.startup_error(format!("no HTTP answer within {STARTUP_TIMEOUT:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn exit_status(&self) -> Option<std::process::ExitStatus> {
        lock(&self.child)
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn startup_error(&self, reason: String) -> ObjectServerError {
        let log = self.dir.path().join("server.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        ObjectServerError::Startup {
            server: self.server,
            port: self.port,
            reason,
            tail: lines[lines.len().saturating_sub(20)..].join("\n"),
            log,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGKILL, as if it died.
    pub(crate) fn kill(&self) {
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `start` on a thread that lives as long as the process and returns what it made; a
/// server started there with `die_with_thread` dies with the process (PR_SET_PDEATHSIG fires
/// when the spawning *thread* ends, so that thread must never end).
pub(crate) fn on_process_thread<T, F, Fut>(name: &str, start: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, ObjectServerError>>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io("building a runtime"))
                .and_then(|rt| rt.block_on(start()));
            let _ = tx.send(result.map_err(|e| e.to_string()));
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn free_port() -> Result<u16, ObjectServerError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io("probing a free port"))?;
    Ok(l.local_addr().map_err(io("probing a free port"))?.port())
}

fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// One bodiless HTTP/1.1 request; returns the status line.
pub(crate) async fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut resp))
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    let text = String::from_utf8_lossy(&resp);
    let status = text.lines().next().unwrap_or_default();
    if status.starts_with("HTTP/1.") {
        Ok(status.to_string())
    } else {
        Err(std::io::Error::other(format!("not an HTTP answer: {status:?}")))
    }
}
