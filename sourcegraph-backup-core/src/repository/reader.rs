//! Reading a committed backup: artifacts are verified while they are read.
//!
//! Raw bytes are fetched by an async task that counts and hashes them; when
//! the object ends, size and SHA-256 are compared with the manifest and a
//! mismatch is delivered as the stream's last item, so a reader that reads to
//! the end can never miss a truncated or corrupt artifact. Decryption (age, for an encrypted
//! backup) and then decompression run on a blocking thread, with the same limits either way:
//! the output stops at the size the manifest records, zstd's window is capped.

use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes};
use futures::StreamExt;
use object_store::{GetResultPayload, ObjectStoreExt};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::encryption::Keys;
use super::BackupRepository;
use crate::error::CoreError;
use crate::manifest::{ArtifactRecord, BackupManifest, Compression};

const RAW_DEPTH: usize = 4;
const DECODED_CHUNK: usize = 1024 * 1024;
/// The most [`ArtifactReader::read_to_end`] holds in memory, whatever a manifest records:
/// the small artifacts read whole (a schema, a configuration document) are far below it.
pub const SMALL_ARTIFACT_LIMIT: u64 = 64 * 1024 * 1024;
/// zstd's default window limit (128 MiB), set explicitly: a frame asking for a larger
/// window is refused instead of allocating it. The writer never asks for more.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// A committed backup opened for reading.
#[derive(Debug, Clone)]
pub struct BackupReader {
    repo: BackupRepository,
    manifest: std::sync::Arc<BackupManifest>,
    /// The checked keys of an encrypted backup.
    keys: Option<Keys>,
}

impl BackupReader {
    pub(super) fn new(repo: BackupRepository, manifest: BackupManifest) -> Self {
        BackupReader {
            repo,
            manifest: std::sync::Arc::new(manifest),
            keys: None,
        }
    }

    pub(super) fn with_keys(mut self, keys: Option<Keys>) -> Self {
        self.keys = keys;
        self
    }

    /// Whether the backup's artifacts are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.manifest.encryption.is_some()
    }

    /// The backup id.
    pub fn id(&self) -> &str {
        &self.manifest.backup_id
    }

    /// The validated manifest.
    pub fn manifest(&self) -> &BackupManifest {
        &self.manifest
    }

    /// The repository it lives in.
    pub fn repository(&self) -> &BackupRepository {
        &self.repo
    }

    /// Opens an artifact for reading; nothing is fetched until it is consumed.
    pub fn open_artifact(&self, record: &ArtifactRecord) -> ArtifactReader {
        ArtifactReader {
            repo: self.repo.clone(),
            backup: self.id().to_string(),
            record: record.clone(),
            encrypted: self.is_encrypted(),
            keys: self.keys.clone(),
        }
    }
}

/// One artifact, verified against its record while read.
#[derive(Debug, Clone)]
pub struct ArtifactReader {
    repo: BackupRepository,
    backup: String,
    record: ArtifactRecord,
    encrypted: bool,
    keys: Option<Keys>,
}

impl ArtifactReader {
    /// The record this artifact is checked against.
    pub fn record(&self) -> &ArtifactRecord {
        &self.record
    }

    /// Starts fetching the stored bytes; the receiver yields raw chunks and,
    /// on mismatch or failure, an error as its last item.
    fn raw(&self) -> mpsc::Receiver<Result<Bytes, CoreError>> {
        let (tx, rx) = mpsc::channel(RAW_DEPTH);
        let store = self.repo.store.clone();
        let object = self.repo.object_path(&self.backup, &self.record.path);
        let record = self.record.clone();
        let local_root = self.repo.local_root.clone();
        tokio::spawn(async move {
            let path = record.path.clone();
            let result = async {
                if let Some(root) = &local_root {
                    inside_local_repository(root, &object, &path).await?;
                }
                let get = match store.get(&object).await {
                    Ok(g) => g,
                    Err(object_store::Error::NotFound { .. }) => {
                        return Err(CoreError::MissingArtifact { path: path.clone() })
                    }
                    Err(e) => return Err(CoreError::store("get", object.to_string(), e)),
                };
                let mut check = Verifier::new(record);
                match get.payload {
                    // Local repositories: read large chunks on one blocking thread
                    // rather than object_store's stream of 8 KiB pieces.
                    GetResultPayload::File(file, _) => {
                        let tx = tx.clone();
                        let range = get.range;
                        tokio::task::spawn_blocking(move || read_file(file, range, check, &tx))
                            .await
                            .map_err(|e| CoreError::Abandoned {
                                path: path.clone(),
                                reason: e.to_string(),
                            })?
                    }
                    GetResultPayload::Stream(mut stream) => {
                        while let Some(chunk) = stream.next().await {
                            let chunk = chunk.map_err(|e| CoreError::store("get", object.to_string(), e))?;
                            check.feed(&chunk)?;
                            if tx.send(Ok(chunk)).await.is_err() {
                                return Ok(()); // the consumer stopped reading
                            }
                        }
                        check.finish()
                    }
                }
            }
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    /// A blocking reader of the decompressed content, for `spawn_blocking`
    /// code (tar). Reading to the end verifies the artifact; a mismatch is an
    /// `io::Error` wrapping a [`CoreError`].
    pub fn into_blocking_read(self) -> Box<dyn Read + Send> {
        let raw = RawRead::new(self.raw());
        let path = self.record.path.clone();
        let limit = self.record.uncompressed_size;
        if !self.encrypted {
            return match self.record.compression {
                Compression::None => Box::new(raw),
                Compression::Zstd { .. } => Box::new(DecodeRead {
                    inner: zstd_decoder(raw.clone()),
                    raw,
                    path,
                    what: "zstd stream",
                    decoded: 0,
                    limit,
                }),
            };
        }
        let Some(keys) = self.keys else {
            return Box::new(DecodeRead {
                inner: None,
                raw,
                path,
                what: "age file (no key was given)",
                decoded: 0,
                limit,
            });
        };
        let age = AgeRead::Pending(raw.clone(), keys);
        let (inner, what) = match self.record.compression {
            Compression::None => (Some(Box::new(age) as Box<dyn Read + Send>), "age file"),
            Compression::Zstd { .. } => (zstd_decoder(age), "age-encrypted zstd stream"),
        };
        Box::new(DecodeRead {
            inner,
            raw,
            path,
            what,
            decoded: 0,
            limit,
        })
    }

    /// The decompressed content as a channel of chunks, decoded on a blocking
    /// thread. The last item is an error when the artifact does not verify.
    pub fn into_chunks(self) -> mpsc::Receiver<Result<Bytes, CoreError>> {
        let (tx, rx) = mpsc::channel(RAW_DEPTH);
        let path = self.record.path.clone();
        let mut reader = self.into_blocking_read();
        tokio::task::spawn_blocking(move || loop {
            let mut buf = vec![0u8; DECODED_CHUNK];
            match read_full(&mut reader, &mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(into_core(e, &path)));
                    return;
                }
            }
        });
        rx
    }

    /// Reads the whole decompressed artifact; for small artifacts only: one whose manifest
    /// records more than [`SMALL_ARTIFACT_LIMIT`] bytes is refused before anything is read.
    pub async fn read_to_end(self) -> Result<Bytes, CoreError> {
        let recorded = self.record.uncompressed_size.max(self.record.size);
        if recorded > SMALL_ARTIFACT_LIMIT {
            return Err(corrupt(
                &self.record.path,
                format!(
                    "the manifest records {recorded} bytes, more than the {SMALL_ARTIFACT_LIMIT} \
                     bytes an artifact read into memory may have"
                ),
            ));
        }
        let mut rx = self.into_chunks();
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(out))
    }

    /// Fetches the stored bytes and checks size and SHA-256, without decoding.
    pub async fn verify(self) -> Result<(), CoreError> {
        let mut rx = self.raw();
        while let Some(item) = rx.recv().await {
            item?;
        }
        Ok(())
    }
}

/// Refuses an artifact of a local repository that resolves (through a symlink) to a file
/// outside the repository's directory.
pub(super) async fn inside_local_repository(
    root: &std::path::Path,
    object: &object_store::path::Path,
    path: &str,
) -> Result<(), CoreError> {
    let file = object
        .parts()
        .fold(root.to_path_buf(), |p, part| p.join(part.as_ref()));
    let (resolved, root) =
        match tokio::try_join!(tokio::fs::canonicalize(&file), tokio::fs::canonicalize(root)) {
            Ok(both) => both,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CoreError::MissingArtifact { path: path.into() })
            }
            Err(e) => {
                return Err(CoreError::Codec {
                    operation: "read",
                    path: path.into(),
                    source: e,
                })
            }
        };
    if resolved.starts_with(&root) {
        Ok(())
    } else {
        Err(corrupt(
            path,
            "it is a symbolic link that leads out of the repository; refusing to read it".into(),
        ))
    }
}

/// Counts and hashes stored bytes, and compares them with the record at the end.
struct Verifier {
    record: ArtifactRecord,
    hasher: Sha256,
    size: u64,
}

impl Verifier {
    fn new(record: ArtifactRecord) -> Self {
        Verifier {
            record,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), CoreError> {
        self.size += chunk.len() as u64;
        if self.size > self.record.size {
            return Err(corrupt(
                &self.record.path,
                format!("longer than the {} bytes the manifest records", self.record.size),
            ));
        }
        self.hasher.update(chunk);
        Ok(())
    }

    fn finish(self) -> Result<(), CoreError> {
        check(&self.record, self.size, &hex::encode(self.hasher.finalize()))
    }
}

/// Reads a local file range in [`DECODED_CHUNK`] pieces (blocking).
fn read_file(
    mut file: std::fs::File,
    range: std::ops::Range<u64>,
    mut check: Verifier,
    tx: &mpsc::Sender<Result<Bytes, CoreError>>,
) -> Result<(), CoreError> {
    use std::io::{Seek, SeekFrom};
    let path = check.record.path.clone();
    let io = |e: std::io::Error| CoreError::Codec {
        operation: "read",
        path: path.clone(),
        source: e,
    };
    file.seek(SeekFrom::Start(range.start)).map_err(io)?;
    let mut remaining = range.end.saturating_sub(range.start);
    while remaining > 0 {
        let want = remaining.min(DECODED_CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        let n = read_full(&mut file, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        remaining -= n as u64;
        check.feed(&buf)?;
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return Ok(()); // the consumer stopped reading
        }
    }
    check.finish()
}

fn corrupt(path: &str, problem: String) -> CoreError {
    CoreError::CorruptArtifact {
        path: path.into(),
        problem,
    }
}

fn check(record: &ArtifactRecord, size: u64, sha256: &str) -> Result<(), CoreError> {
    if size != record.size {
        return Err(corrupt(
            &record.path,
            format!(
                "{size} bytes stored, the manifest records {} (truncated?)",
                record.size
            ),
        ));
    }
    if sha256 != record.sha256 {
        return Err(corrupt(
            &record.path,
            format!("sha256 {sha256} does not match the manifest's {}", record.sha256),
        ));
    }
    Ok(())
}

/// Turns an I/O error from the read side back into the core error it carries.
pub(crate) fn into_core(e: std::io::Error, path: &str) -> CoreError {
    match e.downcast::<CoreError>() {
        Ok(core) => core,
        Err(e) => CoreError::Codec {
            operation: "decompression",
            path: path.into(),
            source: e,
        },
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Raw stored bytes as a blocking reader. Clones share the stream, so the stage at the top of
/// a decoding chain can drain it to run the verification at its end.
#[derive(Clone)]
struct RawRead(Arc<Mutex<RawState>>);

struct RawState {
    rx: mpsc::Receiver<Result<Bytes, CoreError>>,
    current: Bytes,
    done: bool,
}

impl RawRead {
    fn new(rx: mpsc::Receiver<Result<Bytes, CoreError>>) -> Self {
        RawRead(Arc::new(Mutex::new(RawState {
            rx,
            current: Bytes::new(),
            done: false,
        })))
    }

    /// Reads the rest so the verification at the end runs.
    fn drain(&self) -> std::io::Result<()> {
        let mut sink = [0u8; 64 * 1024];
        while self.clone().read(&mut sink)? > 0 {}
        Ok(())
    }
}

impl Read for RawRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut state = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while state.current.is_empty() {
            if state.done {
                return Ok(0);
            }
            match state.rx.blocking_recv() {
                Some(Ok(chunk)) => state.current = chunk,
                Some(Err(e)) => {
                    state.done = true;
                    return Err(std::io::Error::other(e));
                }
                None => {
                    state.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(state.current.len());
        buf[..n].copy_from_slice(&state.current[..n]);
        state.current.advance(n);
        Ok(n)
    }
}

/// A zstd decoder whose window is capped; `None` when one cannot be made.
fn zstd_decoder<R: Read + Send + 'static>(input: R) -> Option<Box<dyn Read + Send>> {
    let mut decoder = zstd::stream::read::Decoder::new(input).ok()?;
    decoder.window_log_max(ZSTD_WINDOW_LOG_MAX).ok()?;
    Some(Box::new(decoder))
}

/// age decryption of the stored bytes, started on the first read (on the blocking thread):
/// the header was checked with these keys when the backup was opened.
enum AgeRead {
    Pending(RawRead, Keys),
    Reading(Box<age::stream::StreamReader<RawRead>>),
    Failed,
}

impl AgeRead {
    fn start(raw: RawRead, keys: &Keys) -> std::io::Result<age::stream::StreamReader<RawRead>> {
        let failed = |e: age::DecryptError| match e {
            // The raw stream's own error (a verification failure) passes through.
            age::DecryptError::Io(e) => e,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
        };
        age::Decryptor::new(raw)
            .map_err(failed)?
            .decrypt(keys.identities())
            .map_err(failed)
    }
}

impl Read for AgeRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let AgeRead::Pending(..) = self {
            let AgeRead::Pending(raw, keys) = std::mem::replace(self, AgeRead::Failed) else {
                return Ok(0);
            };
            *self = AgeRead::Reading(Box::new(Self::start(raw, &keys)?));
        }
        match self {
            AgeRead::Reading(r) => r.read(buf),
            _ => Err(std::io::Error::other("age decryption failed earlier")),
        }
    }
}

/// The decoded content (zstd, age, or both) over the raw stream: drains the raw stream at the
/// end, so trailing bytes and the final checksum are always checked, and stops as soon as the
/// output passes the size the manifest records (a decompression bomb).
struct DecodeRead {
    /// The decoding chain; `None` when it cannot be built (the first read says why).
    inner: Option<Box<dyn Read + Send>>,
    /// The raw stream at the bottom of the chain.
    raw: RawRead,
    path: String,
    /// What the stored bytes should be, for messages.
    what: &'static str,
    decoded: u64,
    limit: u64,
}

impl Read for DecodeRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Err(std::io::Error::other(CoreError::Codec {
                operation: "decompression",
                path: self.path.clone(),
                source: std::io::Error::other(format!("cannot decode the {}", self.what)),
            }));
        };
        let n = inner.read(buf).map_err(|e| {
            // A verification failure underneath wins over the decoder's complaint.
            match self.raw.drain() {
                Err(raw) => raw,
                Ok(()) if e.get_ref().is_some_and(|inner| inner.is::<CoreError>()) => e,
                Ok(()) => std::io::Error::other(CoreError::CorruptArtifact {
                    path: self.path.clone(),
                    problem: format!("not a valid {}: {e}", self.what),
                }),
            }
        })?;
        self.decoded += n as u64;
        if self.decoded > self.limit {
            return Err(std::io::Error::other(CoreError::CorruptArtifact {
                path: self.path.clone(),
                problem: format!(
                    "decodes to more than the {} bytes the manifest records (stopped there)",
                    self.limit
                ),
            }));
        }
        if n == 0 && !buf.is_empty() {
            self.raw.drain()?;
        }
        Ok(n)
    }
}
