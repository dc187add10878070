//! The node's HTTP endpoints as a tool on the same machine reaches them, from its
//! configuration: a wildcard listen address (`0.0.0.0`, `::`) is reached on loopback.

use std::time::{Duration, Instant};

use aegis_config::NodeConfig;

/// Bound on each request a tool makes to a node (the guide's checker used 5 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes of a response body a tool reads.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// `host:port` reachable from this machine for a listener on `host`.
pub fn reachable(host: &str, port: u16) -> String {
    let host = match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        Ok(ip) if ip.is_unspecified() => "[::1]".to_owned(),
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host.to_owned(),
    };
    format!("{host}:{port}")
}

/// `http(s)://host:port` of the API port (`/health`, the client API).
pub fn api_url(config: &NodeConfig) -> String {
    let scheme = if config.api.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!(
        "{scheme}://{}",
        reachable(&config.api.host, config.api.port)
    )
}

/// `http://host:port` of the monitoring port (`/metrics`, `/status`), if monitoring is on.
pub fn monitoring_url(config: &NodeConfig) -> Option<String> {
    config.monitoring.enabled.then(|| {
        format!(
            "http://{}",
            reachable(&config.monitoring.host, config.monitoring.metrics_port)
        )
    })
}

/// The metrics path with its leading `/`.
pub fn metrics_path(config: &NodeConfig) -> String {
    let path = &config.monitoring.metrics_path;
    if path.starts_with('/') {
        path.clone()
    } else {
        format!("/{path}")
    }
}

/// An HTTP client for the tools: [`REQUEST_TIMEOUT`] per request, certificates of a
/// node's own API accepted when it serves TLS (it is the operator's own node).
pub fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .danger_accept_invalid_certs(true)
        .build()
        .map_err(|error| anyhow::anyhow!("build the HTTP client: {error}"))
}

/// One GET: status, `X-Response-Time` header, the time taken and the body (at most
/// [`MAX_BODY_BYTES`]), or why it failed.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub response_time_header: Option<String>,
    pub elapsed: Duration,
    pub body: String,
}

pub async fn get(client: &reqwest::Client, url: &str) -> Result<Fetched, String> {
    let started = Instant::now();
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|error| describe(&error))?;
    let status = response.status().as_u16();
    let response_time_header = response
        .headers()
        .get("x-response-time")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| describe(&error))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("response larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        status,
        response_time_header,
        elapsed: started.elapsed(),
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// GET and parse JSON (a non-2xx status or a body that is not JSON is an error).
pub async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let fetched = get(client, url).await?;
    serde_json::from_str(&fetched.body).map_err(|error| format!("{url}: not JSON: {error}"))
}

/// reqwest's error with its causes ("error sending request: connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = cause_source(source);
    }
    text
}

fn cause_source<'a>(
    error: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    error.and_then(std::error::Error::source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_reached_on_loopback() {
        assert_eq!(reachable("0.0.0.0", 8080), "127.0.0.1:8080");
        assert_eq!(reachable("::", 9090), "[::1]:9090");
        assert_eq!(reachable("10.0.0.1", 8080), "10.0.0.1:8080");
        assert_eq!(reachable("::1", 8080), "[::1]:8080");
        assert_eq!(reachable("node1.example", 8080), "node1.example:8080");
    }
}
