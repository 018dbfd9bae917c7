//! Managed-Postgres conditions on a throwaway cluster, as RDS, Cloud SQL, AlloyDB and Azure
//! Flexible Server set them up: the customer's role logs in without superuser and owns its
//! database; extensions are created beforehand by the provider's administrator (here the
//! cluster's superuser) and belong to it.

use super::{quote_ident, PgCluster, HOST};
use crate::error::Result;

impl PgCluster {
    /// Connection URL for database `db` as `role` (loopback connections are trusted: no
    /// password).
    pub fn url_as(&self, role: &str, db: &str) -> String {
        format!(
            "postgres://{}@{HOST}:{}/{}",
            super::percent_encode(role),
            self.port,
            super::percent_encode(db)
        )
    }

    /// Creates `role` when missing (`LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`).
    pub async fn create_login_role(&self, role: &str) -> Result<()> {
        let lit = role.replace('\'', "''");
        self.batch_execute(
            "postgres",
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{lit}') THEN \
                 CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF; END $$",
                quote_ident(role)
            ),
        )
        .await
    }

    /// A managed database: `owner` (created when missing, see
    /// [`create_login_role`](Self::create_login_role)) owns database `db`, in which the
    /// superuser has created `extensions` in schema `public`.
    pub async fn create_managed_database(&self, db: &str, owner: &str, extensions: &[&str]) -> Result<()> {
        self.create_login_role(owner).await?;
        self.batch_execute(
            "postgres",
            &format!("CREATE DATABASE {} OWNER {}", quote_ident(db), quote_ident(owner)),
        )
        .await?;
        let sql: String = extensions
            .iter()
            .map(|e| {
                format!(
                    "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA public;\n",
                    quote_ident(e)
                )
            })
            .collect();
        self.batch_execute(db, &sql).await
    }
}
