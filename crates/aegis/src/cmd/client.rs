//! `aegis tx submit|get` and `aegis block get`: a command-line client of a node's HTTP API
//! (docs/api.md). Transactions are signed here with a client key; the node's answers are
//! printed as they came, and an error answer makes the command exit non-zero.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use aegis_crypto::SecretKey;
use aegis_types::{Hash, Transaction, TxBody};
use anyhow::{Context, bail};
use serde_json::Value;

/// Longest wait of `--wait` by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(60);
/// How often `--wait` asks the node again.
const WAIT_POLL: Duration = Duration::from_millis(200);
/// Bound on each HTTP request of the client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest client key file read.
const MAX_KEY_FILE_BYTES: u64 = 4096;

#[derive(Debug, clap::Subcommand)]
pub enum TxCommand {
    /// Sign a transaction with a client key and submit it; prints its id.
    Submit(SubmitArgs),
    /// Print a transaction (pending, or committed with its inclusion proof).
    Get(GetTxArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum BlockCommand {
    /// Print a block with its transactions and commit certificate.
    Get(GetBlockArgs),
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// The node's API address, such as http://localhost:8080.
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// The payload, as text (its UTF-8 bytes are signed and stored).
    #[arg(long, value_name = "TEXT")]
    pub payload: String,
    /// Client key file; created on first use (default: $AEGIS_CLIENT_KEY, else
    /// ~/.aegis/client-key.json).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Wait until the transaction is committed, then print its height and inclusion proof.
    #[arg(long)]
    pub wait: bool,
    /// Longest wait with --wait, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_WAIT.as_secs())]
    pub timeout: u64,
    /// Nonce (default: the current time in nanoseconds, so each submission is distinct).
    #[arg(long)]
    pub nonce: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct GetTxArgs {
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// The transaction id (64 hex digits).
    pub id: String,
}

#[derive(Debug, clap::Args)]
pub struct GetBlockArgs {
    #[arg(long, value_name = "URL")]
    pub node: String,
    /// A height, or `latest`.
    pub height: String,
}

pub fn tx(command: TxCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match command {
            TxCommand::Submit(args) => submit(args).await,
            TxCommand::Get(args) => {
                let id = Hash::from_hex(&args.id).map_err(|_| {
                    anyhow::anyhow!("transaction id {:?} is not 64 hex digits", args.id)
                })?;
                let client = Client::new(&args.node)?;
                print_answer(client.get(&format!("/v1/transactions/{id}")).await?)
            }
        }
    })
}

pub fn block(command: BlockCommand) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let BlockCommand::Get(args) = command;
        let height = match args.height.as_str() {
            "latest" => "latest".to_owned(),
            other => other
                .parse::<u64>()
                .map_err(|_| anyhow::anyhow!("height {other:?} is not a number or `latest`"))?
                .to_string(),
        };
        let client = Client::new(&args.node)?;
        print_answer(client.get(&format!("/v1/blocks/{height}")).await?)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

/// An answer from the node: its status and JSON body.
#[derive(Debug)]
struct Answer {
    status: reqwest::StatusCode,
    body: Value,
}

/// Prints the body; an error status makes the command fail after printing it.
fn print_answer(answer: Answer) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&answer.body)?);
    Ok(if answer.status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(node: &str) -> anyhow::Result<Client> {
        let base = node.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("--node {node:?} must be a URL such as http://localhost:8080");
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("build the HTTP client")?;
        Ok(Client { http, base })
    }

    async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        answer(response, &url).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let response = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        answer(response, &url).await
    }
}

async fn answer(response: reqwest::Response, url: &str) -> anyhow::Result<Answer> {
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("read the answer of {url}"))?;
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| Value::from(text.trim_end().to_owned()));
    Ok(Answer { status, body })
}

async fn submit(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.node)?;
    let key_path = match args.key {
        Some(path) => path,
        None => default_key_path()?,
    };
    let key = load_or_create_key(&key_path)?;
    let node = client.get("/v1/node").await?;
    if !node.status.is_success() {
        return print_answer(node);
    }
    let chain_id = node.body["chain_id"]
        .as_str()
        .context("the node's /v1/node answer has no chain_id")?
        .to_owned();
    let nonce = args.nonce.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let tx: Transaction = key.sign_transaction(TxBody {
        version: aegis_types::ENCODING_VERSION,
        chain_id,
        sender: key.public_key(),
        nonce,
        payload: args.payload.into_bytes(),
    });
    let id = tx.id();
    let submitted = client
        .post("/v1/transactions", &serde_json::to_value(&tx)?)
        .await?;
    if !submitted.status.is_success() {
        return print_answer(submitted);
    }
    println!("{id}");
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let answer = client.get(&format!("/v1/transactions/{id}")).await?;
        if answer.status.is_success() && answer.body["status"] == "committed" {
            let body = &answer.body;
            println!("height: {}", body["height"]);
            println!("index: {}", body["index"]);
            println!("block_hash: {}", body["block_hash"].as_str().unwrap_or(""));
            println!("proof: {}", serde_json::to_string(&body["proof"])?);
            return Ok(ExitCode::SUCCESS);
        }
        if !answer.status.is_success() && answer.status != reqwest::StatusCode::NOT_FOUND {
            return print_answer(answer);
        }
        if Instant::now() >= deadline {
            eprintln!(
                "error: transaction {id} not committed within {} s",
                args.timeout
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

fn default_key_path() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("AEGIS_CLIENT_KEY")
        && !path.is_empty()
    {
        return Ok(PathBuf::from(path));
    }
    let home = std::env::var("HOME").context("HOME is not set; give --key FILE")?;
    Ok(Path::new(&home).join(".aegis").join("client-key.json"))
}

/// A client key file: `{"secret_key": "<64 hex>", "public_key": "<64 hex>"}`, mode 0600.
/// Created (with its directory) when missing.
fn load_or_create_key(path: &Path) -> anyhow::Result<SecretKey> {
    match aegis_fs::read_regular_file_to_string(path, MAX_KEY_FILE_BYTES) {
        Ok(text) => {
            let json: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", path.display()))?;
            let hex_key = json["secret_key"]
                .as_str()
                .with_context(|| format!("{}: no secret_key", path.display()))?;
            let bytes: [u8; 32] = hex::decode(hex_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .with_context(|| format!("{}: secret_key is not 64 hex digits", path.display()))?;
            Ok(SecretKey::from_bytes(bytes))
        }
        Err(error) if error.is_not_found() => {
            let key = SecretKey::generate();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("create {}", dir.display()))?;
            }
            let json = serde_json::json!({
                "secret_key": hex::encode(key.to_bytes()),
                "public_key": key.public_key().to_string(),
            });
            write_private(path, &serde_json::to_string_pretty(&json)?)?;
            eprintln!("created client key {}", path.display());
            Ok(key)
        }
        Err(error) => Err(anyhow::Error::new(error).context("read the client key")),
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}
