//! The nodes `aegis bench` loads: a devnet it starts (and stops), or the nodes given with
//! `--nodes`, with their processes for the CPU and memory figures.

use super::*;

/// The nodes under load: started here (a devnet) or given with `--nodes`.
pub(super) struct Network {
    /// Processes started here, running.
    pub(super) started: Vec<devnet::Node>,
    /// API URL of each node that takes load, node0 first.
    pub(super) apis: Vec<String>,
    /// Name and process id (when known) of each node that takes load.
    pub(super) processes: Vec<(String, Option<u32>)>,
    /// The temporary directory of the devnet, removed on drop.
    pub(super) _scratch: Option<tempfile::TempDir>,
    /// PostgreSQL databases created for the validators: admin URL and names.
    pub(super) databases: Option<(String, Vec<String>)>,
    /// Names of the validators left down.
    pub(super) down: Vec<String>,
}

impl Network {
    pub(super) async fn start(args: &LoadArgs) -> anyhow::Result<Network> {
        if !args.nodes.is_empty() {
            return Ok(Network::given(&args.nodes));
        }
        let (scratch, dir) = match &args.dir {
            Some(dir) => (None, dir.clone()),
            None => {
                let scratch = tempfile::Builder::new()
                    .prefix("aegis-bench-")
                    .tempdir()
                    .context("create a temporary directory for the devnet")?;
                let dir = scratch.path().join("devnet");
                (Some(scratch), dir)
            }
        };
        let base_port = match args.base_port {
            Some(port) => port,
            None => testnet::free_base_port(args.validators)?,
        };
        let generated = testnet::generate(&testnet::Args {
            validators: args.validators,
            out: dir.clone(),
            base_port,
            host: "127.0.0.1".to_owned(),
            hosts: Vec::new(),
            chain_id: "aegis-bench".to_owned(),
            algorithm: args.algorithm.clone(),
        })
        .with_context(|| format!("generate the devnet in {}", dir.display()))?;
        let mut network = Network {
            started: Vec::new(),
            apis: Vec::new(),
            processes: Vec::new(),
            _scratch: scratch,
            databases: None,
            down: Vec::new(),
        };
        let mut urls = vec![None; generated.homes.len()];
        if args.storage == "postgresql" {
            let admin = args
                .database_url
                .clone()
                .or_else(|| std::env::var("DATABASE_URL").ok())
                .filter(|url| !url.is_empty())
                .context("--storage postgresql needs --database-url URL or DATABASE_URL")?;
            let mut names = Vec::new();
            for (i, home) in generated.homes.iter().enumerate() {
                let name = format!("aegis_bench_{}_{base_port}_{i}", std::process::id());
                let url = aegis_storage::create_postgres_database(&admin, &name)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))
                    .context("create the validators' PostgreSQL databases")?;
                names.push(name);
                network.databases = Some((admin.clone(), names.clone()));
                super::super::point_node_at_postgres(home)?;
                urls[i] = Some(url);
            }
        }
        let exe = std::env::current_exe().context("find the aegis executable")?;
        let running = args.validators - args.down;
        for (i, home) in generated.homes.iter().enumerate() {
            if i >= running {
                network.down.push(format!("node{i}"));
                continue;
            }
            let env: Vec<(&str, &str)> = urls[i]
                .as_deref()
                .map(|url| vec![("DATABASE_URL", url)])
                .unwrap_or_default();
            match devnet::start_node(&exe, home, i, base_port, &env) {
                Ok(node) => {
                    network.apis.push(node.api.clone());
                    network
                        .processes
                        .push((node.name.clone(), Some(node.child.id())));
                    network.started.push(node);
                }
                Err(error) => {
                    network.stop().await;
                    return Err(error);
                }
            }
        }
        if let Err(error) = network.wait_ready(running).await {
            network.stop().await;
            return Err(error);
        }
        Ok(network)
    }

    pub(super) fn given(urls: &[String]) -> Network {
        let apis: Vec<String> = urls
            .iter()
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .collect();
        let processes = apis
            .iter()
            .enumerate()
            .map(|(i, api)| (format!("node{i}"), local_pid(api)))
            .collect();
        Network {
            started: Vec::new(),
            apis,
            processes,
            _scratch: None,
            databases: None,
            down: Vec::new(),
        }
    }

    /// Waits until every started node is healthy with all the other running validators
    /// connected.
    pub(super) async fn wait_ready(&mut self, running: usize) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .context("build the HTTP client")?;
        let deadline = Instant::now() + START_DEADLINE;
        let peers = running.saturating_sub(1);
        for i in 0..self.started.len() {
            loop {
                self.check_alive()?;
                let node = &self.started[i];
                let ready = http
                    .get(format!("{}/health?min_peers={peers}", node.api))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "{} was not healthy with {peers} peers within {START_DEADLINE:?}; see its logs",
                        node.name
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// An error naming the first started node that has exited, with the end of its log.
    pub(super) fn check_alive(&mut self) -> anyhow::Result<()> {
        for node in &mut self.started {
            if let Ok(Some(status)) = node.child.try_wait() {
                bail!(
                    "{} exited ({status}): {}",
                    node.name,
                    last_log_line(node).unwrap_or_else(|| "see its logs/console.log".to_owned())
                );
            }
        }
        Ok(())
    }

    pub(super) async fn stop(&mut self) {
        devnet::stop_nodes(&mut self.started).await;
        self.started.clear();
        if let Some((admin, names)) = self.databases.take() {
            for name in names {
                if let Err(error) = aegis_storage::drop_postgres_database(&admin, &name).await {
                    eprintln!("warning: {error}");
                }
            }
        }
    }
}

/// The last line a node printed on its console (where a start-up error goes).
pub(super) fn last_log_line(node: &devnet::Node) -> Option<String> {
    // From the file's end: a console log may be large.
    crate::ops::logfile::last_lines(&node.home.join("logs/console.log"), 20)
        .ok()?
        .into_iter()
        .rev()
        .find(|line| !line.trim().is_empty())
}

/// The pid of the local process listening on the port of `api`, when the host is loopback.
pub(super) fn local_pid(api: &str) -> Option<u32> {
    let authority = api.split("://").nth(1).unwrap_or(api);
    let authority = authority.split('/').next().unwrap_or(authority);
    let (host, port) = authority.rsplit_once(':')?;
    let local = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    if !local {
        return None;
    }
    super::super::procfs::pid_listening_on(port.parse().ok()?)
}
