//! Helpers shared by the binary's integration tests: the `aegis` command with a controlled
//! environment, and a minimal HTTP GET for the node's endpoints.

#![allow(dead_code, reason = "each test binary uses a different subset")]

pub mod browser;
pub mod docs;
pub mod network;
pub mod workload;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

/// The `aegis` binary under test, with every variable the node reads removed, so each test
/// controls them.
pub fn aegis() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aegis"));
    for var in [
        "AEGIS_ENCRYPTION_KEY",
        "AEGIS_HOME",
        "AEGIS_NODE_ID",
        "DATABASE_URL",
        "AEGIS_LOG",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    command
}

/// `GET path` on 127.0.0.1:`port`: the response head and body, or `None` while nothing
/// answers.
pub fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    http_get_at(IpAddr::V4(Ipv4Addr::LOCALHOST), port, path)
}

/// `GET path` on `ip:port` (nodes on their own loopback addresses).
pub fn http_get_at(ip: IpAddr, port: u16, path: &str) -> Option<(String, String)> {
    let address = SocketAddr::new(ip, port);
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Some((head.to_owned(), body))
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// `POST path` with a JSON body on 127.0.0.1:`port`: the status code and body.
pub fn http_post(port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    http_post_at(IpAddr::V4(Ipv4Addr::LOCALHOST), port, path, body)
}

/// `POST path` with a JSON body on `ip:port`.
pub fn http_post_at(ip: IpAddr, port: u16, path: &str, body: &str) -> Option<(u16, String)> {
    let address = SocketAddr::new(ip, port);
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}
