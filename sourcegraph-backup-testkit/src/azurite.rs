//! A throwaway Azure Blob Storage emulator (Azurite, from npm) on loopback.
//!
//! Azurite is installed into `.tools/azurite` by `scripts/install-test-deps.sh` and runs on
//! Node.js; when it is missing, starting it fails with install advice (tests never skip). It
//! keeps blobs in memory and serves the well-known development account `devstoreaccount1`.
//! [`AzuriteServer::env`] gives the variables `object_store`'s `MicrosoftAzureBuilder::from_env`
//! reads to use it (`AZURE_STORAGE_USE_EMULATOR`, `AZURITE_BLOB_STORAGE_URL`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sourcegraph_backup_testkit::s3::ObjectServerError> {
//! use sourcegraph_backup_testkit::azurite::AzuriteServer;
//!
//! let az = AzuriteServer::shared()?; // one per process; its env is applied to the process
//! az.create_container("backups").await?;
//! // BackupRepository::open("az://backups/prefix") now talks to it.
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::daemon::{io, on_process_thread, Daemon, ObjectServerError};

/// The development account Azurite serves.
pub const ACCOUNT: &str = "devstoreaccount1";

/// Creates a container with a SharedKey-signed request (Azurite checks signatures; Node.js is
/// there anyway and has HMAC built in). Arguments: port, container. 201 or 409 (exists) is success.
const CREATE_CONTAINER_JS: &str = r#"
const http = require("http"), crypto = require("crypto");
const [port, container] = process.argv.slice(1);
const account = "devstoreaccount1";
const key = Buffer.from("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==", "base64");
const date = new Date().toUTCString(), version = "2021-08-06";
const toSign = ["PUT", "", "", "", "", "", "", "", "", "", "", "",
  `x-ms-date:${date}`, `x-ms-version:${version}`,
  `/${account}/${account}/${container}\nrestype:container`].join("\n");
const sig = crypto.createHmac("sha256", key).update(toSign, "utf8").digest("base64");
const req = http.request({ host: "127.0.0.1", port, method: "PUT",
  path: `/${account}/${container}?restype=container`,
  headers: { "x-ms-date": date, "x-ms-version": version, "Content-Length": "0",
             Authorization: `SharedKey ${account}:${sig}` } }, res => {
  res.resume();
  res.on("end", () => { console.log(res.statusCode); process.exit(res.statusCode === 201 || res.statusCode === 409 ? 0 : 1); });
});
req.on("error", e => { console.error(e.message); process.exit(2); });
req.end();
"#;

/// An Azurite blob server on `127.0.0.1:<free port>`, killed on drop.
#[derive(Debug)]
pub struct AzuriteServer {
    daemon: Daemon,
}

impl AzuriteServer {
    /// Path of the `azurite-blob` program: `.tools/azurite/node_modules/.bin/azurite-blob`.
    pub fn program() -> PathBuf {
        crate::tools_dir()
            .join("azurite")
            .join("node_modules")
            .join(".bin")
            .join("azurite-blob")
    }

    /// Starts a server and waits until it answers HTTP.
    pub async fn start() -> Result<Self, ObjectServerError> {
        Self::start_with(false).await
    }

    /// One server for the whole process, started on first use (killed by the kernel when the
    /// process exits), with [`AzuriteServer::apply_env`] done before this returns.
    pub fn shared() -> Result<&'static AzuriteServer, ObjectServerError> {
        static SHARED: OnceLock<Result<AzuriteServer, String>> = OnceLock::new();
        let started = SHARED.get_or_init(|| {
            let server = on_process_thread("azurite", || Self::start_with(true));
            if let Ok(s) = &server {
                s.apply_env();
            }
            server
        });
        started.as_ref().map_err(|reason| ObjectServerError::Shared {
            server: "Azurite",
            reason: reason.clone(),
        })
    }

    async fn start_with(die_with_thread: bool) -> Result<Self, ObjectServerError> {
        let program = Self::program();
        if !program.is_file() {
            return Err(ObjectServerError::NotInstalled {
                server: "Azurite",
                path: program,
                how: "npm install azurite into .tools/azurite; needs Node.js",
            });
        }
        let args = |port: u16| {
            [
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--inMemoryPersistence",
                "--silent",
                "--skipApiVersionCheck",
                "--disableTelemetry",
            ]
            .map(String::from)
            .to_vec()
        };
        let daemon = Daemon::start("Azurite", &program, args, die_with_thread).await?;
        Ok(AzuriteServer { daemon })
    }

    /// Its socket address.
    pub fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    /// `http://127.0.0.1:PORT` (blobs live under `/devstoreaccount1/<container>/`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The variables that point `object_store` at this emulator with the development account.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            ("AZURITE_BLOB_STORAGE_URL".into(), self.endpoint()),
        ]
    }

    /// Sets [`AzuriteServer::env`] in this process and removes credentials that would override
    /// the development account's. Affects every thread (see [`AzuriteServer::shared`]).
    pub fn apply_env(&self) {
        for var in [
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "AZURE_STORAGE_ACCESS_KEY",
            "AZURE_STORAGE_MASTER_KEY",
            "AZURE_STORAGE_SAS_KEY",
            "AZURE_STORAGE_SAS_TOKEN",
            "AZURE_STORAGE_TOKEN",
        ] {
            std::env::remove_var(var);
        }
        for (k, v) in self.env() {
            std::env::set_var(k, v);
        }
    }

    /// Creates a container (succeeds when it exists). Runs a few lines of Node.js that sign the
    /// request with the development account key.
    pub async fn create_container(&self, name: &str) -> Result<(), ObjectServerError> {
        let out = tokio::process::Command::new("node")
            .args(["-e", CREATE_CONTAINER_JS, &self.addr().port().to_string(), name])
            .output()
            .await
            .map_err(io("running node to create an Azurite container"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ObjectServerError::Request {
                request: format!("PUT /{ACCOUNT}/{name}?restype=container (create container)"),
                status: format!(
                    "{} {}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            })
        }
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&self) {
        self.daemon.kill();
    }
}
