//! A throwaway S3-compatible server (moto's server mode) on loopback, and a proxy in front of
//! it that can cut the connection mid-upload.
//!
//! moto is installed into `.tools/moto` by `scripts/install-test-deps.sh`; when it is missing,
//! starting a server fails with install advice (tests never skip). moto keeps everything in
//! memory and does not check signatures, so any credentials work; [`S3Server::env`] gives the
//! `AWS_*` variables `object_store`'s `AmazonS3Builder::from_env` reads.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sourcegraph_backup_testkit::s3::ObjectServerError> {
//! use sourcegraph_backup_testkit::s3::S3Server;
//!
//! let s3 = S3Server::shared()?; // one server per process; its env is applied to the process
//! s3.create_bucket("backups").await?;
//! // BackupRepository::open("s3://backups/prefix") now talks to it.
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use crate::daemon::ObjectServerError;
use crate::daemon::{http, io, on_process_thread, Daemon};

/// The region the server's environment names (moto accepts any).
pub const REGION: &str = "us-east-1";

/// A moto S3 server on `127.0.0.1:<free port>`, killed on drop.
#[derive(Debug)]
pub struct S3Server {
    daemon: Daemon,
}

impl S3Server {
    /// Path of the `moto_server` program: `.tools/moto/bin/moto_server`.
    pub fn program() -> PathBuf {
        crate::tools_dir().join("moto").join("bin").join("moto_server")
    }

    /// Starts a server and waits until it answers HTTP.
    pub async fn start() -> Result<Self, ObjectServerError> {
        Self::start_with(false).await
    }

    /// One server for the whole process, started on first use on a thread that lives as long as
    /// the process (the kernel kills the server when the process exits, even on a crash), with
    /// [`S3Server::apply_env`] done before this returns. Tests of one binary share it, each with
    /// its own bucket.
    pub fn shared() -> Result<&'static S3Server, ObjectServerError> {
        static SHARED: OnceLock<Result<S3Server, String>> = OnceLock::new();
        let started = SHARED.get_or_init(|| {
            let server = on_process_thread("s3-server", || Self::start_with(true));
            if let Ok(s) = &server {
                s.apply_env();
            }
            server
        });
        started.as_ref().map_err(|reason| ObjectServerError::Shared {
            server: "moto S3 server",
            reason: reason.clone(),
        })
    }

    async fn start_with(die_with_thread: bool) -> Result<Self, ObjectServerError> {
        let program = Self::program();
        if !program.is_file() {
            return Err(ObjectServerError::NotInstalled {
                server: "moto S3 server",
                path: program,
                how: "a venv with PyPI `moto[server]` in .tools/moto",
            });
        }
        let args = |port: u16| vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()];
        let daemon = Daemon::start("moto S3 server", &program, args, die_with_thread).await?;
        Ok(S3Server { daemon })
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.daemon.port()
    }

    /// Its socket address.
    pub fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The `AWS_*` variables that point `object_store` at this server: dummy credentials, a
    /// region, the endpoint, and plain HTTP allowed.
    pub fn env(&self) -> Vec<(String, String)> {
        env_for(&self.endpoint())
    }

    /// Sets [`S3Server::env`] in this process and removes variables that would override it
    /// (session tokens, profiles). Affects every thread: only use it when every test in the
    /// process wants the same server ([`S3Server::shared`] does it once).
    pub fn apply_env(&self) {
        for var in [
            "AWS_SESSION_TOKEN",
            "AWS_TOKEN",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            std::env::remove_var(var);
        }
        for (k, v) in self.env() {
            std::env::set_var(k, v);
        }
    }

    /// Creates a bucket (an HTTP `PUT /name`; moto checks no signature).
    pub async fn create_bucket(&self, name: &str) -> Result<(), ObjectServerError> {
        let status = http(self.addr(), "PUT", &format!("/{name}"))
            .await
            .map_err(io(format!("creating bucket {name} on {}", self.endpoint())))?;
        if status.split_whitespace().nth(1) == Some("200") {
            Ok(())
        } else {
            Err(ObjectServerError::Request {
                request: format!("PUT /{name} (create bucket)"),
                status,
            })
        }
    }

    /// Kills the server at once (SIGKILL), as if it died; everything it held is gone.
    pub fn kill(&self) {
        self.daemon.kill();
    }
}

/// The `AWS_*` variables for an S3 endpoint such as `http://127.0.0.1:PORT`.
pub fn env_for(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_REGION", REGION),
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A loopback TCP proxy that forwards to an upstream address until more than `cut_after` bytes
/// went upstream, then drops every connection and stops listening: to clients it looks like a
/// server that died mid-upload, while the upstream keeps what it received.
#[derive(Debug)]
pub struct CuttingProxy {
    addr: SocketAddr,
    sent: Arc<AtomicU64>,
    cut: watch::Sender<bool>,
}

impl CuttingProxy {
    /// Starts the proxy on `127.0.0.1:<free port>` in the current tokio runtime.
    pub async fn start(upstream: SocketAddr, cut_after: u64) -> Result<Self, ObjectServerError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io("binding the proxy"))?;
        let addr = listener.local_addr().map_err(io("binding the proxy"))?;
        let sent = Arc::new(AtomicU64::new(0));
        let (cut, cut_rx) = watch::channel(false);
        let state = Arc::new((sent.clone(), cut.clone(), cut_after));
        tokio::spawn(async move {
            let mut stop = cut_rx.clone();
            loop {
                tokio::select! {
                    _ = stop.wait_for(|c| *c) => return, // drops the listener
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { return };
                        tokio::spawn(forward(client, upstream, state.clone(), cut_rx.clone()));
                    }
                }
            }
        });
        Ok(CuttingProxy { addr, sent, cut })
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes forwarded upstream so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Whether the connection was cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Cuts now.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

type ProxyState = Arc<(Arc<AtomicU64>, watch::Sender<bool>, u64)>;

async fn forward(client: TcpStream, upstream: SocketAddr, state: ProxyState, mut cut: watch::Receiver<bool>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_r.read(&mut buf).await?;
            if n == 0 {
                return server_w.shutdown().await;
            }
            let (sent, cut, cut_after) = &*state;
            if sent.fetch_add(n as u64, Ordering::Relaxed) + n as u64 > *cut_after {
                let _ = cut.send(true);
                return Ok(());
            }
            server_w.write_all(&buf[..n]).await?;
        }
    };
    let down = tokio::io::copy(&mut server_r, &mut client_w);
    // Whichever ends first (or the cut) drops both sockets.
    tokio::select! {
        _ = cut.wait_for(|c| *c) => {}
        _ = async { tokio::join!(up, down) } => {}
    }
}
