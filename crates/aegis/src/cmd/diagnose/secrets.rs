//! What `aegis diagnose` must never write: secret values known from `.env`, the
//! environment and the configured connection string, and passwords inside URLs.

use std::collections::BTreeSet;
use std::path::Path;

use aegis_config::{NodeConfig, StorageBackend};

/// Smallest value treated as a secret to scrub (shorter ones would scrub ordinary words).
const MIN_SECRET_LEN: usize = 4;

/// Variable names whose values are secrets (substrings, upper case).
const SECRET_NAME_PARTS: [&str; 6] = ["KEY", "SECRET", "PASSWORD", "PASS", "TOKEN", "DATABASE_URL"];

/// Every secret value known, to scrub from whatever the report holds.
#[derive(Debug, Default)]
pub struct Secrets {
    values: BTreeSet<String>,
}

/// Whether a variable of this name holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAME_PARTS.iter().any(|part| upper.contains(part))
}

impl Secrets {
    pub fn collect(config_path: &Path, config: Option<&NodeConfig>) -> Secrets {
        let mut secrets = Secrets::default();
        let home = aegis_config::resolve_home(config_path, &aegis_config::process_env);
        if let Ok(pairs) = aegis_config::load_dotenv(&home.join(".env")) {
            for (name, value) in pairs {
                if is_secret_name(&name) {
                    secrets.add_with_parts(&value);
                }
            }
        }
        for (name, value) in std::env::vars() {
            if is_secret_name(&name) {
                secrets.add_with_parts(&value);
            }
        }
        if let Some(config) = config
            && let StorageBackend::Postgres { connection_string } = &config.storage.backend
        {
            secrets.add_with_parts(connection_string);
        }
        secrets
    }

    /// A secret, and for a connection string also its password alone.
    fn add_with_parts(&mut self, value: &str) {
        self.add(value);
        if let Some(password) = url_password(value) {
            self.add(&password);
            if let Ok(decoded) = percent_decode(&password) {
                self.add(&decoded);
            }
        }
        for pair in value.split([' ', '&', '?']) {
            if let Some((key, secret)) = pair.split_once('=')
                && key.eq_ignore_ascii_case("password")
            {
                self.add(secret);
            }
        }
    }

    fn add(&mut self, value: &str) {
        let value = value.trim();
        if value.len() >= MIN_SECRET_LEN {
            self.values.insert(value.to_owned());
        }
    }

    /// `text` with every known secret replaced by `***` (longest first, so a secret that
    /// holds another is replaced whole), and URL passwords hidden.
    pub fn scrub(&self, text: &str) -> String {
        let mut values: Vec<&String> = self.values.iter().collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_owned();
        for value in values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), "***");
            }
        }
        redact_urls(&out)
    }
}

/// The password of `scheme://user:password@host...`, if any.
fn url_password(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let (_, password) = userinfo.split_once(':')?;
    Some(password.to_owned())
}

fn percent_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Every `scheme://user:password@` in `text` with the password as `***`.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find("://") {
        let (before, after) = rest.split_at(found + 3);
        out.push_str(before);
        let end = after
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '/' | '?' | '#' | ',' | ')' | '>')
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority
            .rfind('@')
            .and_then(|at| authority[..at].find(':').map(|colon| (colon, at)))
        {
            Some((colon, at)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_hidden_wherever_they_appear() {
        assert_eq!(
            redact_urls("url: \"postgres://aegis:s3cret@db:5432/aegis\" and http://h:1/x"),
            "url: \"postgres://aegis:***@db:5432/aegis\" and http://h:1/x"
        );
        assert_eq!(redact_urls("no urls here"), "no urls here");
    }

    #[test]
    fn known_secrets_are_scrubbed_everywhere() {
        let mut secrets = Secrets::default();
        secrets.add_with_parts("postgres://aegis:p%40ss-word@db/aegis");
        secrets.add_with_parts("0123456789abcdef");
        secrets.add("abc");
        let text = "key 0123456789abcdef; pw p@ss-word; raw p%40ss-word; abc stays";
        assert_eq!(secrets.scrub(text), "key ***; pw ***; raw ***; abc stays");
        assert!(is_secret_name("AEGIS_ENCRYPTION_KEY") && is_secret_name("DATABASE_URL"));
        assert!(!is_secret_name("AEGIS_NODE_ID"));
    }
}
