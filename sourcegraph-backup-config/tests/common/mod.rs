//! Shared test fixtures: the configuration tables as Sourcegraph defines them in two schema
//! generations, and documents with every byte-level trap.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod backup;

use sourcegraph_backup_pg::PgConnectionConfig;
use sourcegraph_backup_testkit::PgCluster;

/// v5.x-like (before tenants): `critical_and_site_config` with `redacted_contents`, `settings`,
/// `external_services` with `encryption_key_id` and the old namespace columns; no `tenant_id`.
pub const SCHEMA_V5: &str = r#"
CREATE TYPE critical_or_site AS ENUM ('critical', 'site');
CREATE TABLE critical_and_site_config (
    id serial PRIMARY KEY,
    type critical_or_site NOT NULL,
    contents text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    author_user_id integer,
    redacted_contents text
);
CREATE UNIQUE INDEX critical_and_site_config_unique ON critical_and_site_config (id, type);
CREATE TABLE settings (
    id serial PRIMARY KEY,
    org_id integer,
    contents text DEFAULT '{}'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    user_id integer,
    author_user_id integer,
    CONSTRAINT settings_no_empty_contents CHECK ((contents <> ''::text))
);
CREATE INDEX settings_global_id ON settings (id) WHERE user_id IS NULL AND org_id IS NULL;
CREATE TABLE external_services (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    display_name text NOT NULL,
    config text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    last_sync_at timestamp with time zone,
    next_sync_at timestamp with time zone,
    namespace_user_id integer,
    unrestricted boolean DEFAULT false NOT NULL,
    cloud_default boolean DEFAULT false NOT NULL,
    encryption_key_id text DEFAULT ''::text NOT NULL,
    namespace_org_id integer,
    has_webhooks boolean,
    token_expires_at timestamp with time zone,
    CONSTRAINT check_non_empty_config CHECK ((btrim(config) <> ''::text))
);
"#;

/// v7-like: tenants, `tenant_id` defaulting to `current_setting('app.current_tenant')`, row-level
/// security enabled (not forced) with Sourcegraph's policy, the generated `redacted_contents_hash`
/// (pgcrypto), tables owned by the non-superuser `sg` and used by the non-owner `sg_app`, for
/// whom the policies apply.
pub const SCHEMA_V7: &str = r#"
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sg') THEN CREATE ROLE sg LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sg_app') THEN CREATE ROLE sg_app LOGIN; END IF;
END $$;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
GRANT ALL ON SCHEMA public TO sg;
GRANT USAGE ON SCHEMA public TO sg_app;
SET ROLE sg;
CREATE TABLE tenants (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO tenants VALUES (1, 'default');
CREATE TYPE critical_or_site AS ENUM ('critical', 'site');
CREATE TABLE critical_and_site_config (
    id serial PRIMARY KEY,
    type critical_or_site NOT NULL,
    contents text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    author_user_id integer,
    redacted_contents text,
    redacted_contents_hash bytea GENERATED ALWAYS AS (public.digest(redacted_contents, 'sha256')) STORED
);
CREATE TABLE settings (
    id serial PRIMARY KEY,
    org_id integer,
    contents text DEFAULT '{}'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    user_id integer,
    author_user_id integer,
    tenant_id integer DEFAULT (current_setting('app.current_tenant'::text))::integer NOT NULL,
    CONSTRAINT settings_no_empty_contents CHECK ((contents <> ''::text))
);
CREATE TABLE external_services (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    display_name text NOT NULL,
    config text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    deleted_at timestamp with time zone,
    last_sync_at timestamp with time zone,
    next_sync_at timestamp with time zone,
    unrestricted boolean DEFAULT false NOT NULL,
    cloud_default boolean DEFAULT false NOT NULL,
    encryption_key_id text DEFAULT ''::text NOT NULL,
    has_webhooks boolean,
    token_expires_at timestamp with time zone,
    code_host_id integer,
    creator_id integer,
    last_updater_id integer,
    tenant_id integer DEFAULT (current_setting('app.current_tenant'::text))::integer NOT NULL,
    suspended boolean DEFAULT false NOT NULL,
    CONSTRAINT check_non_empty_config CHECK ((btrim(config) <> ''::text))
);
ALTER TABLE settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE external_services ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation_policy ON settings USING (tenant_id = (SELECT (current_setting('app.current_tenant'::text))::integer AS current_tenant));
CREATE POLICY tenant_isolation_policy ON external_services USING (tenant_id = (SELECT (current_setting('app.current_tenant'::text))::integer AS current_tenant));
GRANT SELECT, INSERT, UPDATE, DELETE ON critical_and_site_config, settings, external_services TO sg_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO sg_app;
RESET ROLE;
"#;

/// The two generations under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    V5,
    V7,
}

impl Generation {
    pub fn sql(self) -> &'static str {
        match self {
            Generation::V5 => SCHEMA_V5,
            Generation::V7 => SCHEMA_V7,
        }
    }
}

/// Creates database `db` with the generation's tables and returns the connection the store
/// uses (the non-owner `sg_app` on v7, so row-level security applies).
pub async fn create_db(cluster: &PgCluster, db: &str, generation: Generation) -> PgConnectionConfig {
    cluster.create_database(db).await.unwrap();
    cluster.batch_execute(db, generation.sql()).await.unwrap();
    let url = match generation {
        Generation::V5 => cluster.url(db),
        Generation::V7 => format!("postgres://sg_app@127.0.0.1:{}/{db}", cluster.port()),
    };
    PgConnectionConfig::from_url(&url).unwrap().with_dbname(db)
}

/// The planted secret: must never appear in anything the crate formats.
pub const TOKEN: &str = "ghp_PLANTEDs3cr3tT0ken0123456789abcdef";

/// A site configuration with comments, trailing commas, CRLF, tabs and unicode.
pub fn site_text() -> String {
    "// Site configuration — «Ünïcødé» ✓\r\n{\r\n\t\"externalURL\": \"https://sg.example.com\",\r\n\t/* auth */\r\n\t\"auth.providers\": [\r\n\t\t{\"type\": \"builtin\", \"allowSignup\": false,},\r\n\t\t{\"type\": \"github\", \"clientID\": \"abc\", \"clientSecret\": \"gh-client-secret-xyz\", \"displayName\": \"GitHub 日本\",},\r\n\t],\r\n\t\"email.smtp\": {\"host\": \"smtp\", \"username\": \"mailer\", \"password\": \"smtp-pass-123\",},\r\n\t\"encryption.keys\": {\r\n\t\t\"externalServiceKey\": {\"type\": \"mounted\", \"keyname\": \"extsvc-2024\", \"filepath\": \"/etc/sg/keys/extsvc.key\"},\r\n\t\t\"userExternalAccountKey\": {\"type\": \"awskms\", \"keyId\": \"arn:aws:kms:eu-west-1:1:key/abc\", \"region\": \"eu-west-1\"},\r\n\t\t\"enableCache\": true,\r\n\t},\r\n}\r\n"
        .to_owned()
}

/// Global settings, with a key order a normaliser would change.
pub fn settings_text() -> String {
    "{\n  // comment in settings\n  \"zeta\": 1,\n  \"alpha\": \"Grüße\",\n  \"search.defaultPatternType\": \"standard\",\n}\n".to_owned()
}

/// A GitHub connection holding [`TOKEN`].
pub fn github_text() -> String {
    format!("{{\n\t// the main GitHub\n\t\"url\": \"https://github.com\",\n\t\"token\": \"{TOKEN}\",\n\t\"repositoryQuery\": [\"affiliated\",],\n}}")
}

/// A 1 MiB code host connection (a long repos list).
pub fn big_text() -> String {
    let mut s = String::from("{\n  \"url\": \"https://git.example.com\",\n  \"repos\": [\n");
    let mut i = 0;
    while s.len() < 1024 * 1024 {
        s.push_str(&format!("    \"org/répö-{i:07}\",\r\n"));
        i += 1;
    }
    s.push_str("  ],\n}\n");
    s
}

/// Inserts the fixture documents into `db` as the superuser (tenant 1 where needed).
pub async fn seed(cluster: &PgCluster, db: &str, generation: Generation) {
    let client = cluster.connect(db).await.unwrap();
    if generation == Generation::V7 {
        client
            .batch_execute("SET app.current_tenant = '1'")
            .await
            .unwrap();
    }
    // Two site revisions and two global settings revisions: the newest must win.
    for text in ["{\"old\": true}".to_owned(), site_text()] {
        client
            .execute(
                "INSERT INTO critical_and_site_config (type, contents) VALUES ('site', $1)",
                &[&text],
            )
            .await
            .unwrap();
    }
    for text in ["{\"old\": 1}".to_owned(), settings_text()] {
        client
            .execute("INSERT INTO settings (contents) VALUES ($1)", &[&text])
            .await
            .unwrap();
    }
    client
        .execute(
            "INSERT INTO settings (contents, user_id) VALUES ('{\"user\": 1}', 7)",
            &[],
        )
        .await
        .unwrap();
    for (kind, name, text) in [
        ("GITHUB", "GitHub.com", github_text()),
        ("OTHER", "Big one", big_text()),
        (
            "GITLAB",
            "Deleted",
            "{\"url\": \"https://gitlab.com\", \"token\": \"x\"}".to_owned(),
        ),
    ] {
        client
            .execute(
                "INSERT INTO external_services (kind, display_name, config) VALUES ($1, $2, $3)",
                &[&kind, &name, &text],
            )
            .await
            .unwrap();
    }
    client
        .execute(
            "UPDATE external_services SET deleted_at = now() WHERE display_name = 'Deleted'",
            &[],
        )
        .await
        .unwrap();
}

/// Row counts of the three tables (all tenants, as the superuser).
pub async fn counts(cluster: &PgCluster, db: &str) -> (i64, i64, i64) {
    let c = cluster.connect(db).await.unwrap();
    let n = |t: &str| format!("SELECT count(*) FROM {t}");
    (
        c.query_one(&n("critical_and_site_config"), &[])
            .await
            .unwrap()
            .get(0),
        c.query_one(&n("settings"), &[]).await.unwrap().get(0),
        c.query_one(&n("external_services"), &[]).await.unwrap().get(0),
    )
}
