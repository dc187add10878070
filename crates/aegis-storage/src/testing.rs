//! Test support (feature `testing`): a PostgreSQL database for each test.
//!
//! [`test_database`] returns the URL of a fresh, empty database:
//! - with `AEGIS_TEST_DATABASE_URL` set, a new database is created on that server (the role
//!   needs `CREATEDB`);
//! - otherwise a throwaway cluster is started once per test process from the system's
//!   PostgreSQL binaries (`initdb`, `pg_ctl` on `PATH`, or `/usr/lib/postgresql/*/bin`), in a
//!   temporary directory, on a free port, with its unix socket in that directory. When the
//!   tests run as root the cluster runs as an unprivileged user (`AEGIS_TEST_PG_USER`, else
//!   `postgres` if it exists, else `nobody`) through `runuser`. A small reaper process stops
//!   the cluster and removes the directory when the test process exits, however it exits.
//!
//! `.ci/postgres-setup.sh` prepares a fresh Debian machine for this.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// A running throwaway PostgreSQL cluster.
#[derive(Debug)]
pub struct PgCluster {
    /// The temporary directory holding `data/` and the socket; removed by the reaper.
    pub dir: PathBuf,
    pub port: u16,
    /// Directory of the PostgreSQL binaries used (also holds `pg_dump`, `pg_restore`, `psql`).
    pub bin_dir: PathBuf,
    /// The OS user the server runs as, when the tests run as root.
    pub run_as: Option<String>,
}

/// Superuser created by `initdb` in throwaway clusters.
const SUPERUSER: &str = "aegis";

impl PgCluster {
    /// Starts a cluster. `durable = false` turns off fsync (fine for tests, not for benchmarks).
    pub fn start(durable: bool) -> Result<PgCluster, String> {
        let bin_dir = find_bin_dir()?;
        let run_as = run_as_user();
        let tmp = tempfile::Builder::new()
            .prefix("aegis-pg-")
            .tempdir()
            .map_err(|e| format!("create temporary directory: {e}"))?;
        let dir = tmp.keep();
        let data = dir.join("data");
        // From here on the reaper removes the directory (and stops the server) whatever happens.
        spawn_reaper(&bin_dir, &run_as, &dir);
        if let Some(user) = &run_as {
            chown_to(&dir, user)?;
        }
        // Below the ephemeral ports: no client connection takes it before the server binds.
        let port = aegis_testkit::net::free_port(std::net::Ipv4Addr::LOCALHOST.into());
        let mut initdb = command(&run_as, &bin_dir.join("initdb"));
        initdb.args(["-D"]).arg(&data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        ]);
        if !durable {
            initdb.arg("--no-sync");
        }
        run(initdb, "initdb")?;
        let mut server_options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            dir.display()
        );
        if !durable {
            server_options
                .push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        let mut pg_ctl = command(&run_as, &bin_dir.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(&data)
            .arg("-o")
            .arg(&server_options)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "start"]);
        run(pg_ctl, "pg_ctl start")?;
        Ok(PgCluster {
            dir,
            port,
            bin_dir,
            run_as,
        })
    }

    /// URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server now (the reaper would do it at exit). The directory is removed.
    pub fn stop(&self) {
        let mut pg_ctl = command(&self.run_as, &self.bin_dir.join("pg_ctl"));
        pg_ctl
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"]);
        let _ = run(pg_ctl, "pg_ctl stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL client tool (`pg_dump`, `pg_restore`, `psql`): from the cluster's binary
/// directory when one is known, else `/usr/lib/postgresql/*/bin`, else `PATH`.
pub fn pg_tool(name: &str) -> PathBuf {
    if let Ok(dir) = find_bin_dir() {
        let path = dir.join(name);
        if path.exists() {
            return path;
        }
    }
    PathBuf::from(name)
}

static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The shared throwaway cluster of this test process (started on first use).
pub fn shared_cluster() -> Result<&'static PgCluster, String> {
    CLUSTER
        .get_or_init(|| PgCluster::start(false))
        .as_ref()
        .map_err(Clone::clone)
}

/// The URL of a fresh empty database for one test.
pub async fn test_database() -> Result<String, String> {
    let n = NEXT_DB.fetch_add(1, Ordering::SeqCst);
    let name = format!("aegis_test_{}_{n}", std::process::id());
    let admin_url = match std::env::var("AEGIS_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let cluster = tokio::task::spawn_blocking(shared_cluster)
                .await
                .map_err(|e| e.to_string())??;
            cluster.url("postgres")
        }
    };
    create_database(&admin_url, &name).await?;
    Ok(crate::postgres_url_with_database(&admin_url, &name))
}

/// `CREATE DATABASE name` through the server at `admin_url`.
pub async fn create_database(admin_url: &str, name: &str) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| format!("connect to {}: {e}", crate::redact_url(admin_url)))?;
    let sql = format!("CREATE DATABASE \"{name}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("create database {name}: {e}"))?;
    let _ = conn.close().await;
    Ok(())
}

fn find_bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("AEGIS_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    // initdb on PATH, resolved through symlinks to its real directory (where pg_dump of the
    // same version lives).
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("initdb");
            if candidate.exists() {
                let real = std::fs::canonicalize(&candidate).unwrap_or(candidate);
                if let Some(parent) = real.parent() {
                    return Ok(parent.to_path_buf());
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "no PostgreSQL server binaries found (initdb): install postgresql, run .ci/postgres-setup.sh, \
         or set AEGIS_TEST_DATABASE_URL"
            .to_owned()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_as_user() -> Option<String> {
    if !is_root() {
        return None;
    }
    if let Ok(user) = std::env::var("AEGIS_TEST_PG_USER")
        && !user.is_empty()
    {
        return Some(user);
    }
    ["postgres", "aegis-test", "nobody"]
        .into_iter()
        .find(|u| user_exists(u))
        .map(str::to_owned)
}

fn chown_to(dir: &Path, user: &str) -> Result<(), String> {
    let status = Command::new("chown")
        .arg(user)
        .arg(dir)
        .status()
        .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("chown {user} {} failed", dir.display()))
    }
}

fn command(run_as: &Option<String>, program: &Path) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(mut command: Command, what: &str) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Starts `sh` in the background: it waits until this process is gone, then stops the
/// cluster and removes its directory. Survives panics and `kill -9` of the test binary.
fn spawn_reaper(bin_dir: &Path, run_as: &Option<String>, dir: &Path) {
    let pid = std::process::id();
    let stop = match run_as {
        Some(user) => format!(
            "runuser -u '{user}' -- '{}' -D '{}' -m immediate -w stop",
            bin_dir.join("pg_ctl").display(),
            dir.join("data").display()
        ),
        None => format!(
            "'{}' -D '{}' -m immediate -w stop",
            bin_dir.join("pg_ctl").display(),
            dir.join("data").display()
        ),
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{}'",
        dir.display()
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

#[cfg(test)]
mod tests {
    use crate::postgres_url_with_database;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            postgres_url_with_database("postgres://u:p@h:5/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5/t1?sslmode=disable"
        );
        assert_eq!(
            postgres_url_with_database("postgres://h", "t1"),
            "postgres://h/t1"
        );
    }
}
