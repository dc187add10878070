//! Shared by the integration tests: one test body, run against SQLite and PostgreSQL.

#![allow(dead_code)]

use std::time::Duration;

use aegis_storage::{SqlStore, StoreConfig};

/// Where a test's ledger lives; keeps the SQLite directory alive for the test's duration.
pub struct TestDb {
    pub config: StoreConfig,
    pub kind: &'static str,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = StoreConfig::sqlite(dir.path().join("data/blockchain.db"));
        config.pool_size = 2;
        config.max_overflow = 2;
        config.pool_timeout = Duration::from_secs(10);
        TestDb {
            config,
            kind: "sqlite",
            dir,
        }
    }

    pub async fn postgres() -> TestDb {
        let url = aegis_storage::testing::test_database()
            .await
            .unwrap_or_else(|error| panic!("PostgreSQL for tests: {error}"));
        let mut config = StoreConfig::postgres(url);
        config.pool_size = 2;
        config.max_overflow = 3;
        config.pool_timeout = Duration::from_secs(10);
        TestDb {
            config,
            kind: "postgresql",
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    pub async fn open(&self) -> SqlStore {
        SqlStore::open(&self.config).await.expect("open store")
    }

    pub fn url(&self) -> Option<&str> {
        match &self.config.backend {
            aegis_storage::Backend::Postgres { url } => Some(url),
            aegis_storage::Backend::Sqlite { .. } => None,
        }
    }
}

/// Defines `sqlite::NAME` and `postgres::NAME` for each generic `async fn NAME(db: TestDb)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::TestDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::TestDb::postgres().await).await;
                }
            )*
        }
    };
}
