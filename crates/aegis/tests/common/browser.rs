//! Headless Chromium driven over the Chrome DevTools Protocol (a WebSocket to one page), for
//! the explorer test: navigate, evaluate JavaScript, wait for conditions with deadlines,
//! take screenshots, and collect what the page reported (exceptions, console errors,
//! security-policy refusals). The browser is killed when this is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aegis_testkit::wait::wait_for;
use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// How long Chromium may take to start and open its DevTools port on a loaded machine.
const START_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for one DevTools command's answer.
const COMMAND_WAIT: Duration = Duration::from_secs(30);
/// How long one read of the socket blocks before the deadline is checked again.
const READ_SLICE: Duration = Duration::from_millis(200);
/// Pause between two evaluations of a condition.
const POLL: Duration = Duration::from_millis(100);

/// The Chromium binary: `AEGIS_TEST_CHROMIUM`, else Debian's.
fn chromium() -> String {
    std::env::var("AEGIS_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// `GET path` on Chromium's DevTools HTTP port: the body. That server keeps connections
/// open, so the body is read by its `Content-Length`, not to the end of the stream.
fn devtools_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(COMMAND_WAIT)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    String::from_utf8(body).ok()
}

/// A child process killed when dropped, until [`into_inner`](Killed::into_inner) hands it
/// on: a panic while Chromium starts must not leave it running.
struct Killed(Option<Child>);

impl Killed {
    fn into_inner(mut self) -> Child {
        self.0.take().expect("the child is held until handed on")
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A headless Chromium with one page under control.
pub struct Browser {
    child: Child,
    socket: WebSocket<TcpStream>,
    next_id: u64,
    /// What the page reported, in order: exceptions, console errors, log entries.
    pub reports: Vec<String>,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium (headless, as root too: no sandbox; a new empty profile; nothing
    /// fetched in the background) with a `width`×`height` window, and attaches to its page.
    pub fn start(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().expect("a profile directory");
        let child = Killed(Some(
            Command::new(chromium())
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--remote-debugging-port=0",
                    &format!("--window-size={width},{height}"),
                ])
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg("about:blank")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|error| {
                    panic!(
                        "cannot start {} ({error}): install the test dependencies with \
                     scripts/install-test-deps.sh (Debian's chromium)",
                        chromium()
                    )
                }),
        ));
        // Chromium writes its DevTools port in the profile once it listens.
        let active = profile.path().join("DevToolsActivePort");
        let port: u16 = wait_for(
            START_WAIT,
            || format!("Chromium to write {}", active.display()),
            || {
                std::fs::read_to_string(&active)
                    .ok()?
                    .lines()
                    .next()?
                    .parse()
                    .ok()
            },
        );
        let page = wait_for(
            START_WAIT,
            || format!("a page target on the DevTools port {port}"),
            || {
                let targets: Value =
                    serde_json::from_str(&devtools_get(port, "/json/list")?).ok()?;
                targets
                    .as_array()?
                    .iter()
                    .find(|target| target["type"] == "page")?["webSocketDebuggerUrl"]
                    .as_str()
                    .map(str::to_owned)
            },
        );
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to DevTools");
        // Blocking (within a bound) for the handshake, which cannot resume after a timeout;
        // then short reads, so that waits check their deadlines.
        stream
            .set_read_timeout(Some(COMMAND_WAIT))
            .expect("a read timeout");
        let (socket, _) = tungstenite::client(page.as_str(), stream).expect("DevTools handshake");
        socket
            .get_ref()
            .set_read_timeout(Some(READ_SLICE))
            .expect("a read timeout");
        let mut browser = Browser {
            child: child.into_inner(),
            socket,
            next_id: 0,
            reports: Vec::new(),
            _profile: profile,
        };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({}));
        }
        browser
    }

    /// Sends a DevTools command and returns its result; panics on a protocol error.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({ "id": id, "method": method, "params": params }).to_string();
        self.socket
            .send(Message::text(request))
            .unwrap_or_else(|error| panic!("send {method}: {error}"));
        let deadline = Instant::now() + COMMAND_WAIT;
        loop {
            assert!(
                Instant::now() < deadline,
                "no answer to {method} within {COMMAND_WAIT:?}"
            );
            let message = match self.socket.read() {
                Ok(Message::Text(text)) => text,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(error))
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(error) => panic!("DevTools connection failed during {method}: {error}"),
            };
            let message: Value = serde_json::from_str(&message).expect("DevTools sends JSON");
            if message["id"] == id {
                if let Some(error) = message.get("error") {
                    panic!("{method} failed: {error}");
                }
                return message["result"].clone();
            }
            self.record(&message);
        }
    }

    /// Keeps what the page reports that a test should see.
    fn record(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => self.reports.push(format!(
                "exception: {}",
                params["exceptionDetails"]["exception"]["description"]
                    .as_str()
                    .unwrap_or_else(|| params["exceptionDetails"]["text"].as_str().unwrap_or(""))
            )),
            Some("Runtime.consoleAPICalled") if params["type"] == "error" => {
                self.reports
                    .push(format!("console error: {}", params["args"]));
            }
            Some("Log.entryAdded") => {
                let entry = &params["entry"];
                if entry["level"] == "error" || entry["source"] == "security" {
                    self.reports.push(format!(
                        "log {} {}: {} {}",
                        entry["source"].as_str().unwrap_or(""),
                        entry["level"].as_str().unwrap_or(""),
                        entry["text"].as_str().unwrap_or(""),
                        entry["url"].as_str().unwrap_or("")
                    ));
                }
            }
            _ => {}
        }
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("evaluating {expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` until it gives something other than `null`, `undefined` or
    /// `false`, and returns that; panics at `timeout` with `what`, the page's text and its
    /// reports.
    pub fn wait_for(&mut self, timeout: Duration, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(expression);
            if !value.is_null() && value != Value::Bool(false) {
                return value;
            }
            if Instant::now() >= deadline {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!(
                    "timed out after {timeout:?} waiting for {what}\npage text:\n{}\nreports: {:#?}",
                    text.as_str().unwrap_or(""),
                    self.reports
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// Saves a PNG of the whole page at `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let result = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let data = result["data"].as_str().expect("screenshot data");
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the artifact directory");
        }
        std::fs::write(path, png).expect("write the screenshot");
    }
}
