//! The environment: `${VAR}` substitution, `AEGIS_HOME` resolution and dotenv files.
//!
//! Nothing here reads or changes the process environment by itself: lookups go through an
//! [`EnvLookup`] the caller passes in ([`process_env`] for the real one), so tests stay
//! independent of each other and of the machine.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::DotenvError;

/// How the loader reads environment variables: name in, value out (`None` when unset).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads the process environment. A variable whose value is not valid Unicode counts as unset.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Where relative paths are anchored when neither `AEGIS_HOME` nor the file's location say.
pub const DEFAULT_AEGIS_HOME: &str = "/opt/aegis";

/// The environment variable that names the installation directory.
pub const AEGIS_HOME_VAR: &str = "AEGIS_HOME";

/// Resolves the installation directory that relative paths in the configuration hang from:
///
/// 1. `AEGIS_HOME` if it is set and not empty (as the guide's `${AEGIS_HOME:-/opt/aegis}`);
/// 2. otherwise, if the configuration file sits in a directory named `config`, that
///    directory's parent (`/srv/aegis/config/production.yaml` gives `/srv/aegis`);
/// 3. otherwise [`DEFAULT_AEGIS_HOME`].
///
/// The result is absolute: a relative `AEGIS_HOME` or configuration path is taken from the
/// current directory.
pub fn resolve_home(config_path: &Path, env: EnvLookup<'_>) -> PathBuf {
    if let Some(home) = env(AEGIS_HOME_VAR).filter(|home| !home.is_empty()) {
        return absolute(Path::new(&home));
    }
    let config_path = absolute(config_path);
    if let Some(dir) = config_path.parent()
        && dir.file_name().is_some_and(|name| name == "config")
        && let Some(home) = dir.parent()
    {
        return home.to_path_buf();
    }
    PathBuf::from(DEFAULT_AEGIS_HOME)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Anchors `path` at `home` unless it is already absolute.
pub fn resolve_path(home: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        home.join(path)
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` in one scalar.
///
/// `${NAME:-default}` uses `default` when `NAME` is unset or empty, as the shell does; the
/// default is taken literally (it cannot contain `}` or further references). `$${` writes a
/// literal `${`. A `$` not followed by `{` is kept as is, so passwords with `$` survive.
/// Substituted values are not scanned again. Unset variables without a default are added to
/// `missing` and leave an empty string in their place.
///
/// Returns an error message for a malformed reference.
pub(crate) fn substitute(
    text: &str,
    env: EnvLookup<'_>,
    missing: &mut BTreeSet<String>,
) -> Result<String, String> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
            continue;
        }
        let Some(body_and_rest) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_and_rest.find('}') else {
            return Err(format!(
                "unterminated `${{` in {text:?}: write `${{NAME}}` or `${{NAME:-default}}`"
            ));
        };
        let body = &body_and_rest[..end];
        rest = &body_and_rest[end + 1..];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_env_name(name) {
            return Err(format!(
                "invalid environment variable reference `${{{body}}}`: a name is letters, digits and `_`, not starting with a digit"
            ));
        }
        match (env(name), default) {
            (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                missing.insert(name.to_owned());
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The operator's dotenv file, `$HOME/.env`, if `HOME` is set.
pub fn home_dotenv_path(env: EnvLookup<'_>) -> Option<PathBuf> {
    env("HOME")
        .filter(|home| !home.is_empty())
        .map(|home| Path::new(&home).join(".env"))
}

/// Largest dotenv file read, in bytes; real ones hold a few variables.
pub const MAX_DOTENV_FILE_BYTES: u64 = 64 * 1024;

/// Reads a dotenv file into `(KEY, VALUE)` pairs in file order. A missing file gives no pairs.
/// Nothing is applied to the environment: the caller sets the pairs whose keys are not
/// already set. The file must be a regular file of at most [`MAX_DOTENV_FILE_BYTES`].
pub fn load_dotenv(path: &Path) -> Result<Vec<(String, String)>, DotenvError> {
    match aegis_fs::read_regular_file_to_string(path, MAX_DOTENV_FILE_BYTES) {
        Ok(text) => parse_dotenv(&text, &path.display().to_string()),
        Err(error) if error.is_not_found() => Ok(Vec::new()),
        Err(error) => Err(DotenvError::Read {
            path: path.to_path_buf(),
            source: error.into_io(),
        }),
    }
}

/// Parses dotenv text: `KEY=VALUE` lines, blank lines and `#` comments, an optional
/// `export ` prefix, values optionally in single quotes (literal) or double quotes (with
/// `\n`, `\t`, `\"`, `\\` escapes). An unquoted value ends at ` #` (a trailing comment) and
/// is trimmed. `file` names the source in errors (`FILE:LINE: message`).
pub fn parse_dotenv(text: &str, file: &str) -> Result<Vec<(String, String)>, DotenvError> {
    let mut pairs = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let syntax = |message: String| DotenvError::Syntax {
            file: file.to_owned(),
            line: index + 1,
            message,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            return Err(syntax(format!("expected KEY=VALUE, found {line:?}")));
        };
        let key = key.trim_end();
        if !is_env_name(key) {
            return Err(syntax(format!(
                "{key:?} is not a variable name (letters, digits and `_`, not starting with a digit)"
            )));
        }
        let value = parse_dotenv_value(value.trim_start()).map_err(syntax)?;
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

fn parse_dotenv_value(value: &str) -> Result<String, String> {
    let trailing = |rest: &str| {
        let rest = rest.trim();
        if rest.is_empty() || rest.starts_with('#') {
            Ok(())
        } else {
            Err(format!("unexpected text after the closing quote: {rest:?}"))
        }
    };
    if let Some(body) = value.strip_prefix('\'') {
        let Some(end) = body.find('\'') else {
            return Err("unterminated single-quoted value".to_owned());
        };
        trailing(&body[end + 1..])?;
        return Ok(body[..end].to_owned());
    }
    if let Some(body) = value.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    trailing(&body[i + 1..])?;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, other)) => out.push(other),
                    None => break,
                },
                other => out.push(other),
            }
        }
        return Err("unterminated double-quoted value".to_owned());
    }
    let value = match value.find(" #").or_else(|| value.find("\t#")) {
        Some(comment) => &value[..comment],
        None => value,
    };
    Ok(value.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn sub(text: &str, env: &dyn Fn(&str) -> Option<String>) -> (String, Vec<String>) {
        let mut missing = BTreeSet::new();
        let out = substitute(text, env, &mut missing).unwrap();
        (out, missing.into_iter().collect())
    }

    #[test]
    fn substitution_forms() {
        let env = env_of(&[("A", "x"), ("EMPTY", "")]);
        assert_eq!(sub("${A}", &env).0, "x");
        assert_eq!(sub("pre-${A}-post", &env).0, "pre-x-post");
        assert_eq!(sub("${B:-dflt}", &env).0, "dflt");
        assert_eq!(sub("${EMPTY:-dflt}", &env).0, "dflt");
        assert_eq!(sub("${EMPTY}", &env).0, "");
        assert_eq!(sub("${A:-dflt}", &env).0, "x");
        assert_eq!(sub("${B:-}", &env).0, "");
        assert_eq!(sub("$${A}", &env).0, "${A}");
        assert_eq!(sub("pa$$word$", &env).0, "pa$$word$");
        assert_eq!(sub("${B}${C}${B}", &env).1, vec!["B", "C"]);
    }

    #[test]
    fn substituted_values_are_not_rescanned() {
        let env = env_of(&[("A", "${B}")]);
        assert_eq!(sub("${A}", &env), ("${B}".to_owned(), vec![]));
    }

    #[test]
    fn malformed_references() {
        let env = env_of(&[]);
        let mut missing = BTreeSet::new();
        assert!(substitute("${A", &env, &mut missing).is_err());
        assert!(substitute("${1A}", &env, &mut missing).is_err());
        assert!(substitute("${}", &env, &mut missing).is_err());
    }

    #[test]
    fn home_resolution_order() {
        let set = env_of(&[("AEGIS_HOME", "/srv/aegis")]);
        let unset = env_of(&[]);
        let empty = env_of(&[("AEGIS_HOME", "")]);
        let in_config = Path::new("/data/node1/config/production.yaml");
        assert_eq!(resolve_home(in_config, &set), PathBuf::from("/srv/aegis"));
        assert_eq!(
            resolve_home(in_config, &unset),
            PathBuf::from("/data/node1")
        );
        assert_eq!(
            resolve_home(in_config, &empty),
            PathBuf::from("/data/node1")
        );
        assert_eq!(
            resolve_home(Path::new("/etc/aegis/node.yaml"), &unset),
            PathBuf::from(DEFAULT_AEGIS_HOME)
        );
        let relative = resolve_home(Path::new("config/production.yaml"), &unset);
        assert!(relative.is_absolute());
        assert_eq!(relative, std::env::current_dir().unwrap());
    }

    #[test]
    fn dotenv_parsing() {
        let text = "# comment\n\nexport DATABASE_URL=\"postgresql://u:p@h/db\"\nA=plain value # note\nB='lit $X # no comment'\nC=\"a\\nb\"\n  D = spaced  \nE=\n";
        let pairs = parse_dotenv(text, ".env").unwrap();
        assert_eq!(
            pairs,
            vec![
                ("DATABASE_URL".into(), "postgresql://u:p@h/db".into()),
                ("A".into(), "plain value".into()),
                ("B".into(), "lit $X # no comment".into()),
                ("C".into(), "a\nb".into()),
                ("D".into(), "spaced".into()),
                ("E".into(), String::new()),
            ]
        );
        let error = parse_dotenv("A=1\nnot a pair\n", "/root/.env").unwrap_err();
        assert_eq!(
            error.to_string(),
            "/root/.env:2: expected KEY=VALUE, found \"not a pair\""
        );
        assert!(parse_dotenv("A=\"open\n", ".env").is_err());
        assert!(parse_dotenv("1A=x\n", ".env").is_err());
    }

    #[test]
    fn dotenv_file_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_dotenv(&dir.path().join(".env")).unwrap().is_empty());
        std::fs::write(dir.path().join(".env"), "X=1\n").unwrap();
        assert_eq!(
            load_dotenv(&dir.path().join(".env")).unwrap(),
            vec![("X".to_owned(), "1".to_owned())]
        );
        let env = env_of(&[("HOME", "/home/op")]);
        assert_eq!(home_dotenv_path(&env), Some(PathBuf::from("/home/op/.env")));
    }
}
