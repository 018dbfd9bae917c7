//! `PgConnectionConfig::from_url`, `from_key_value` and `FromStr` on
//! arbitrary strings.
//!
//! Invariants for every configuration parsed: nothing panics; `Debug`,
//! `Display`, `redacted_url()` and `endpoint()` never show the password (when
//! it is distinctive enough to tell: four or more letters or digits that no
//! visible field contains); `redacted_url()` parses back to the same hosts,
//! ports, user, database, sslmode and certificate, key and password files,
//! without a password, and redacting that gives the same URL again (its
//! documented round trip).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sourcegraph_backup_pg::PgConnectionConfig;

/// Text of the `Debug` and URL layout itself, which a password may match by chance.
const SKELETON: &str = "PgConnectionConfig { hosts hostaddrs ports user password dbname options \
    application_name ssl_mode ssl_root_cert ssl_cert ssl_key passfile connect_timeout Some None \
    <redacted> Disable Prefer Require VerifyCa VerifyFull postgres:// sslmode disable prefer \
    require verify-ca verify-full sslrootcert sslcert sslkey passfile sourcegraph-backup .. }";

/// Percent-encoding as `redacted_url` does it (RFC 3986 unreserved kept).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn check(cfg: &PgConnectionConfig) {
    let tc = cfg.to_tokio_config();
    let debug = format!("{cfg:?}");
    let display = format!("{cfg}");
    let url = cfg.redacted_url();
    let endpoint = cfg.endpoint();
    let _ = (
        cfg.host(),
        cfg.port(),
        cfg.is_unix_socket(),
        cfg.effective_ssl_mode(),
        cfg.uses_system_roots(),
    );

    if let Some(pw) = tc.get_password() {
        assert!(cfg.has_password());
        let pw = String::from_utf8_lossy(pw).into_owned();
        let mut visible: Vec<String> = vec![
            cfg.user().into(),
            cfg.dbname().into(),
            cfg.application_name().into(),
        ];
        visible.extend(cfg.hosts());
        visible.extend(tc.get_options().map(str::to_owned));
        visible.extend(tc.get_hostaddrs().iter().map(ToString::to_string));
        visible.push(format!("{:?} {:?}", tc.get_ports(), tc.get_connect_timeout()));
        for p in [cfg.ssl_root_cert(), cfg.ssl_cert(), cfg.ssl_key(), cfg.passfile()]
            .into_iter()
            .flatten()
        {
            visible.push(p.to_string_lossy().into_owned());
        }
        let forms: Vec<String> = visible
            .iter()
            .flat_map(|v| [v.clone(), format!("{v:?}"), encode(v)])
            .chain([SKELETON.to_owned()])
            .collect();
        let distinctive = pw.chars().count() >= 4
            && pw.chars().all(char::is_alphanumeric)
            && !forms.iter().any(|f| f.contains(&pw));
        if distinctive {
            for (what, text) in [
                ("Debug", &debug),
                ("Display", &display),
                ("redacted_url", &url),
                ("endpoint", &endpoint),
            ] {
                assert!(!text.contains(&pw), "the password is in {what}: {text}");
            }
        }
    } else {
        assert!(!cfg.has_password());
    }

    let back = PgConnectionConfig::from_url(&url)
        .unwrap_or_else(|e| panic!("redacted_url {url:?} does not parse back: {e}"));
    assert!(!back.has_password(), "{url}");
    assert_eq!(
        back.hosts(),
        cfg.hosts(),
        "hosts differ after the round trip through {url}"
    );
    assert_eq!(back.endpoint(), cfg.endpoint(), "{url}");
    assert_eq!(back.user(), cfg.user(), "{url}");
    assert_eq!(back.dbname(), cfg.dbname(), "{url}");
    assert_eq!(back.ssl_mode(), cfg.ssl_mode(), "{url}");
    assert_eq!(back.ssl_root_cert(), cfg.ssl_root_cert(), "{url}");
    assert_eq!(back.ssl_cert(), cfg.ssl_cert(), "{url}");
    assert_eq!(back.ssl_key(), cfg.ssl_key(), "{url}");
    assert_eq!(back.passfile(), cfg.passfile(), "{url}");
    assert_eq!(back.redacted_url(), url, "redacting twice changes the URL");
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let url = PgConnectionConfig::from_url(s);
    let kv = PgConnectionConfig::from_key_value(s);
    let any = s.parse::<PgConnectionConfig>();
    for r in [&url, &kv, &any] {
        match r {
            Ok(cfg) => check(cfg),
            Err(e) => {
                let _ = (e.to_string(), format!("{e:?}"));
            }
        }
    }
    // FromStr picks one of the two forms.
    if let Ok(cfg) = &any {
        assert!(
            url.as_ref().ok() == Some(cfg) || kv.as_ref().ok() == Some(cfg),
            "FromStr accepted what neither form gives"
        );
    }
});
