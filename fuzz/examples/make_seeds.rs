//! Writes the seed corpora of the fuzz targets into `corpus/<target>/`
//! (relative to the current directory, normally `fuzz/`):
//!
//! - `manifest`: manifests written by the library itself (a backup of a
//!   small volume and of configuration files into a local repository);
//! - `tar_extract`: a part archive written by the volumes exporter, small
//!   hand-made archives (long names, links, empty directories) and the
//!   hostile archives of `sourcegraph-backup-volumes/tests/hostile.rs`;
//! - `config_jsonc`: the JSONC documents of the configuration crate's tests,
//!   each prefixed with the byte that selects the document kind;
//! - `pg_connection`: the connection strings of the pg crate's tests.
//!
//! `cargo run --example make_seeds` from `fuzz/`; it overwrites files of the
//! same names and leaves other files alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sourcegraph_backup_config::{ConfigFilePaths, ConfigStore};
use sourcegraph_backup_core::{
    plan, BackupOption, BackupRepository, DataStore, Deployment, ExportContext, Exporter, PlanRequest,
    ProgressSink, SourceInfo, StoreSection,
};

trait DataStoreExporter: DataStore + Exporter {}
impl<T: DataStore + Exporter> DataStoreExporter for T {}
use sourcegraph_backup_volumes::VolumeStore;
use tar::{EntryType, Header};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// One raw entry, as in hostile.rs: the name bytes go straight into the
/// header, bypassing the tar crate's own checks.
fn entry(out: &mut Vec<u8>, name: &[u8], kind: EntryType, link: &[u8], data: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_600_000_000);
    if kind == EntryType::Char {
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
    }
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name);
    old.linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn tar_of(entries: &[(&[u8], EntryType, &[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, kind, link, data) in entries {
        entry(&mut out, name, *kind, link, data);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn tar_seeds() {
    use EntryType::*;
    let t = "tar_extract";
    write(
        t,
        "plain",
        &tar_of(&[
            (b"./", Directory, b"", b""),
            (b"HEAD", Regular, b"", b"ref: refs/heads/main\n"),
            (b"refs/", Directory, b"", b""),
            (b"refs/heads/", Directory, b"", b""),
            (
                b"refs/heads/main",
                Regular,
                b"",
                b"0123456789abcdef0123456789abcdef01234567\n",
            ),
            (b"empty/", Directory, b"", b""),
            (b"link", Symlink, b"HEAD", b""),
            (b"hard", Link, b"HEAD", b""),
        ]),
    );
    // GNU long names and link targets, a PAX path, a global header.
    let mut b = tar::Builder::new(Vec::new());
    let long = format!("{}/{}", "d".repeat(120), "f".repeat(60));
    let mut h = Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o600);
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    let mut h = Header::new_gnu();
    h.set_entry_type(Symlink);
    h.set_size(0);
    b.append_link(&mut h, "s", "t".repeat(150)).unwrap();
    b.append_pax_extensions([("path", &b"pax/name"[..]), ("mtime", &b"1600000000.5"[..])])
        .unwrap();
    let mut h = Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "ignored", &b"x"[..]).unwrap();
    write(t, "long-names-pax", &b.into_inner().unwrap());

    // The hostile archives of hostile.rs (the absolute paths there are the
    // test's temporary directory; /tmp and ../outside stand in here: the
    // fuzz target keeps a sentinel directory `outside` beside its root).
    write(
        t,
        "hostile-parent-dir",
        &tar_of(&[
            (b"ok.txt", Regular, b"", b"fine"),
            (b"../escape", Regular, b"", b"evil"),
            (b"sub/../../escape2", Regular, b"", b"evil"),
        ]),
    );
    write(
        t,
        "hostile-absolute",
        &tar_of(&[(b"/tmp/sgb-fuzz-abs/evil", Regular, b"", b"evil")]),
    );
    write(
        t,
        "hostile-symlink-write",
        &tar_of(&[
            (b"x", Symlink, b"../outside/dir", b""),
            (b"x/file", Regular, b"", b"evil"),
        ]),
    );
    write(
        t,
        "hostile-symlink-tmp",
        &tar_of(&[
            (b"d/", Directory, b"", b""),
            (b"d/x", Symlink, b"/tmp", b""),
            (b"d/x/sub/planted", Regular, b"", b"evil"),
        ]),
    );
    write(
        t,
        "hostile-symlink-dir-meta",
        &tar_of(&[
            (b"x", Symlink, b"../outside/dir", b""),
            (b"x/", Directory, b"", b""),
            (b"y", Symlink, b"../outside", b""),
            (b"y/dir/", Directory, b"", b""),
        ]),
    );
    write(t, "hostile-device", &tar_of(&[(b"null", Char, b"", b"")]));
    write(
        t,
        "hostile-hardlink-out",
        &tar_of(&[
            (b"steal", Link, b"../outside/secret", b""),
            (b"steal2", Link, b"../../secret", b""),
        ]),
    );
    write(
        t,
        "hostile-hardlink-via-symlink",
        &tar_of(&[
            (b"l", Symlink, b"../outside/secret", b""),
            (b"steal3", Link, b"l", b""),
        ]),
    );
    write(
        t,
        "hostile-replace-dir-by-symlink",
        &tar_of(&[
            (b"a/", Directory, b"", b""),
            (b"a/f", Regular, b"", b"1"),
            (b"a", Symlink, b"../outside", b""),
            (b"a/secret", Regular, b"", b"evil"),
        ]),
    );
}

/// A real backup into a local repository: a small volume and configuration
/// files, with a plan; returns the manifest bytes and a part archive.
async fn real_backup(tmp: &Path) -> (Vec<u8>, Vec<u8>) {
    let vol = tmp.join("vol");
    std::fs::create_dir_all(vol.join("github.com/acme/app.git/refs/heads")).unwrap();
    std::fs::write(vol.join("github.com/acme/app.git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(
        vol.join("github.com/acme/app.git/refs/heads/main"),
        "0123456789abcdef0123456789abcdef01234567\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("HEAD", vol.join("github.com/acme/app.git/HEAD.link")).unwrap();
    std::fs::create_dir_all(vol.join("empty")).unwrap();
    let cfg = tmp.join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("site-config.json"), "{\n  // c\n  \"externalURL\": \"https://sg.example.com\",\n  \"auth.providers\": [{\"type\": \"builtin\"}],\n}\n").unwrap();
    std::fs::write(
        cfg.join("global-settings.json"),
        "{\"search.defaultPatternType\": \"standard\"}\n",
    )
    .unwrap();
    std::fs::write(
        cfg.join("extsvc-config.json"),
        "{\"GITHUB\": [{\"url\": \"https://github.com\", \"token\": \"t0ken\"}]}\n",
    )
    .unwrap();

    let repo_dir = tmp.join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let repo = BackupRepository::open(repo_dir.to_str().unwrap()).unwrap();
    let plan = plan(&PlanRequest::new(
        BackupOption::AllData,
        Deployment::DockerCompose,
    ));
    let w = repo.start_backup(BackupOption::AllData);
    let stores: Vec<Arc<dyn DataStoreExporter>> = vec![
        Arc::new(VolumeStore::new("gitserver-0", &vol)),
        Arc::new(ConfigStore::files(ConfigFilePaths::in_dir(&cfg))),
    ];
    let mut sections = Vec::new();
    for store in stores {
        let report = store
            .export(ExportContext::new(
                store.id(),
                w.clone(),
                ProgressSink::disabled(),
            ))
            .await
            .unwrap();
        sections.push(StoreSection {
            id: store.id().into(),
            kind: store.kind(),
            catalog: store.catalog(),
            details: report.details,
            warnings: report.warnings,
        });
    }
    let source = SourceInfo {
        sourcegraph_version: Some("6.0.0".into()),
        ..SourceInfo::default()
    };
    w.commit(sections, Some(plan), source, vec!["a warning".into()])
        .await
        .unwrap();
    let mut manifest = None;
    let mut part = None;
    for f in walk(&repo_dir) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name == "manifest.json" {
            manifest = Some(std::fs::read(&f).unwrap());
        } else if name.starts_with("part-") && name.ends_with(".tar.zst") {
            part = Some(zstd::decode_all(std::fs::File::open(&f).unwrap()).unwrap());
        }
    }
    (manifest.expect("a manifest"), part.expect("a part"))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn manifest_seeds(real: &[u8]) {
    let t = "manifest";
    write(t, "real", real);
    write(
        t,
        "minimal",
        br#"{"format_version":1,"backup_id":"20260101T000000Z-ab","created_at":"2026-01-01T00:00:00Z","completed_at":"2026-01-01T00:00:01Z","library_version":"0.1.0","option":"config-only","source":{"sourcegraph_version":null},"plan":null,"stores":[{"id":"config","kind":"config","artifacts":[{"path":"config/site.jsonc.zst","size":1,"sha256":"00","content_type":"application/jsonc","compression":{"codec":"zstd","level":1},"uncompressed_size":2}]}]}"#,
    );
    write(t, "future-version", br#"{"format_version":2,"backup_id":"x"}"#);
}

fn config_seeds() {
    // Selector bytes: 0 site configuration, 1 global settings, 2.. code
    // hosts in the order of CODE_HOSTS in fuzz_targets/config_jsonc.rs
    // (2 GITHUB, 3 GITLAB, 4 BITBUCKETSERVER, 5 BITBUCKETCLOUD,
    // 6 AWSCODECOMMIT, 7 PERFORCE, 8 JVMPACKAGES, 9 NPMPACKAGES,
    // 10 GOMODULES, 11 OTHER, 12 GITOLITE, 13 AZUREDEVOPS, 14 NEWKIND).
    let token = "ghp_PLANTEDs3cr3tT0ken0123456789abcdef";
    let docs: Vec<(&str, u8, String)> = vec![
        ("site-unicode-crlf", 0, "// Site configuration — «Ünïcødé» ✓\r\n{\r\n\t\"externalURL\": \"https://sg.example.com\",\r\n\t/* auth */\r\n\t\"auth.providers\": [\r\n\t\t{\"type\": \"builtin\", \"allowSignup\": false,},\r\n\t\t{\"type\": \"github\", \"clientID\": \"abc\", \"clientSecret\": \"gh-client-secret-xyz\", \"displayName\": \"GitHub 日本\",},\r\n\t],\r\n\t\"email.smtp\": {\"host\": \"smtp\", \"username\": \"mailer\", \"password\": \"smtp-pass-123\",},\r\n\t\"encryption.keys\": {\r\n\t\t\"externalServiceKey\": {\"type\": \"mounted\", \"keyname\": \"extsvc-2024\", \"filepath\": \"/etc/sg/keys/extsvc.key\"},\r\n\t\t\"userExternalAccountKey\": {\"type\": \"awskms\", \"keyId\": \"arn:aws:kms:eu-west-1:1:key/abc\", \"region\": \"eu-west-1\"},\r\n\t\t\"enableCache\": true,\r\n\t},\r\n}\r\n".into()),
        ("site-markers", 0, r#"{"auth.providers": [{"type": "github", "clientSecret": "REDACTED"}], "email.smtp": {"password": "p"},
               "observability.alerts": [{"notifier": {"type": "slack", "url": "https://hooks"}}]}"#.into()),
        ("settings", 1, "{\n  // comment in settings\n  \"zeta\": 1,\n  \"alpha\": \"Grüße\",\n  \"search.defaultPatternType\": \"standard\",\n}\n".into()),
        ("github", 2, format!("{{\n\t// the main GitHub\n\t\"url\": \"https://github.com\",\n\t\"token\": \"{token}\",\n\t\"repositoryQuery\": [\"affiliated\",],\n}}")),
        ("github-crlf-comment", 2, "{\r\n  // my token\r\n  \"url\": \"https://github.com\",\r\n  \"token\": \"ghp_s3cret\",\r\n}".into()),
        ("bitbucket-server", 4, r#"{"url": "https://bb", "username": "u", "password": "pw", "token": "t"}"#.into()),
        ("awscodecommit", 6, r#"{"region": "eu", "accessKeyID": "AK", "secretAccessKey": "SK", "gitCredentials": {"username": "u", "password": "p"}}"#.into()),
        ("gomodules", 10, r#"{"urls": ["https://user:pw@proxy.example.com", "https://proxy.golang.org"]}"#.into()),
        ("other", 11, r#"{"url": "https://me:pw@git.example.com/x", "repos": ["a/b"]}"#.into()),
        ("newkind", 14, r#"{"apiKey": "k1", "nested": {"clientSecret": "k2"}, "keyname": "ok", "u": "https://me:pw@h/x"}"#.into()),
        ("escapes", 2, r#"{"tok\u0065n": "a\"b\\c\u00e9\ud83d\ude00", "url": "x"}"#.into()),
        ("not-object", 1, "[1, 2]".into()),
        ("only-comment", 1, "  // only a comment\n".into()),
        ("unclosed", 1, "{\n  \"a\": \"unclosed\n}".into()),
        ("bare-word", 1, "{\r\n  \"a\": 1,\r\n  \"b\": nope\r\n}".into()),
        ("single-quotes", 1, "{'a': 1}".into()),
    ];
    for (name, selector, text) in docs {
        let mut bytes = vec![selector];
        bytes.extend_from_slice(text.as_bytes());
        write("config_jsonc", name, &bytes);
    }
}

fn pg_seeds() {
    let secret = "s3cr3tPassw0rd";
    let strings = [
        "postgresql://us%20er:p@ss%3Aw@%2Fvar%2Frun%2Fpostgresql/my%20db".to_owned(),
        "postgres:///sg?host=/tmp/sock&port=5433".into(),
        "postgres://u@/".into(),
        "postgres://u@a:1,[::1]:2,b:5432/db?sslmode=prefer".into(),
        format!("postgres://sg:{secret}@%2Ftmp%2Fs%20p:5433/d%2Fb?sslmode=verify-full&sslrootcert=/a%20b.pem"),
        format!("postgres://sg:{secret}@h/sg?sslmode=bogus"),
        format!("postgres://sg:{secret}%zz@h/sg"),
        "postgres://u@[::1/d".into(),
        "postgres://u@h/d?sslrootcert=system".into(),
        "postgres://u@h/d?keepalives=1&keepalives_idle=30&connect_timeout=5&target_session_attrs=read-write&channel_binding=prefer&application_name=x&options=-c%20a%3Db".into(),
        "postgres://u@h/d?sslcert=/c.crt&sslkey=/c.key&passfile=/p&timezone=UTC".into(),
        format!("host=h password='{secret} x\\'y' user=u dbname=d"),
        "host=h password='' user=u".into(),
        "host=h sslmode=verify-full sslrootcert=system".into(),
        "host=/srv/pg port=5433 user=u".into(),
        "hostaddr=10.0.0.5,::1 port=6000,6001 user=u".into(),
        "host=a,b hostaddr=127.0.0.1,::1 port=1,2 sslpassword=x".into(),
    ];
    for (i, s) in strings.iter().enumerate() {
        write("pg_connection", &format!("seed-{i:02}"), s.as_bytes());
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tmp = std::env::temp_dir().join(format!("sgb-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (manifest, part) = real_backup(&tmp).await;
    std::fs::remove_dir_all(&tmp).unwrap();
    manifest_seeds(&manifest);
    write("tar_extract", "real-part", &part);
    tar_seeds();
    config_seeds();
    pg_seeds();
    println!("seeds written under {}", Path::new("corpus").display());
}
