//! Reading the repository's Markdown docs: a page's text, its fenced code blocks, and the
//! shell commands of its `sh`, `bash` and `console` blocks as complete commands (multi-line
//! loops, `\` continuations and here-documents kept whole), with the output a `console`
//! block shows under each command.

use std::path::PathBuf;
use std::process::Command;

/// The text of `docs/<name>`.
pub fn doc(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// One fenced code block: its info string, lines, and the heading it is under.
#[derive(Clone, Debug)]
pub struct Block {
    pub info: String,
    pub lines: Vec<String>,
    pub heading: String,
}

/// The fenced code blocks of a Markdown text: (info string, lines).
pub fn code_blocks(text: &str) -> Vec<(String, Vec<String>)> {
    blocks(text)
        .into_iter()
        .map(|block| (block.info, block.lines))
        .collect()
}

/// The fenced code blocks of a Markdown text, with their headings.
pub fn blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut current: Option<(String, String, Vec<String>)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &mut current {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let fence = "`".repeat(3 + info.chars().take_while(|c| *c == '`').count());
                    current = Some((
                        fence,
                        info.trim_start_matches('`').trim().to_owned(),
                        Vec::new(),
                    ));
                } else if line.starts_with('#') {
                    line.trim_start_matches('#').trim().clone_into(&mut heading);
                }
            }
            Some((fence, info, lines)) => {
                if trimmed.starts_with(fence.as_str()) && trimmed.trim_start_matches('`').is_empty()
                {
                    blocks.push(Block {
                        info: std::mem::take(info),
                        lines: std::mem::take(lines),
                        heading: heading.clone(),
                    });
                    current = None;
                } else {
                    lines.push(line.to_owned());
                }
            }
        }
    }
    blocks
}

/// One complete shell command of a doc, as written, and the output shown under it.
#[derive(Clone, Debug)]
pub struct DocCommand {
    /// `operations.md`, ...
    pub page: String,
    pub heading: String,
    /// Index of its block in the page.
    pub block: usize,
    pub text: String,
    /// Lines a `console` block shows under the command.
    pub shown: Vec<String>,
}

/// Whether bash reads `text` as complete commands (no open loop, quote or `\`).
fn complete(text: &str) -> bool {
    if text.ends_with('\\') {
        return false;
    }
    Command::new("bash")
        .args(["-n", "-c", text])
        .output()
        .expect("run bash -n")
        .status
        .success()
}

/// The here-document delimiter a line opens (`<< 'EOF'`, `<<'SQL'`, `<<EOF`), if any.
fn heredoc_delimiter(line: &str) -> Option<String> {
    let start = line.find("<<")?;
    let rest = line[start + 2..].trim_start_matches('-').trim_start();
    let word: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

/// Every shell command of the `sh`, `bash` and `console` blocks of `page`: a command is the
/// shortest run of lines bash reads as complete (a `for` loop, an `if`, a quoted script
/// over several lines, `\` continuations, a here-document up to its delimiter). Lines that
/// are only a comment, and blank lines, between commands are not commands.
pub fn shell_commands(page: &str) -> Vec<DocCommand> {
    let mut commands = Vec::new();
    for (index, block) in blocks(&doc(page)).into_iter().enumerate() {
        let console = block.info == "console";
        if !(console || block.info == "sh" || block.info == "bash") {
            continue;
        }
        let mut pending = String::new();
        let mut heredoc: Option<String> = None;
        for line in &block.lines {
            let line = if console && pending.is_empty() {
                match line.strip_prefix("$ ") {
                    Some(command) => command,
                    None => {
                        if let Some(last) = commands
                            .last_mut()
                            .filter(|c: &&mut DocCommand| c.block == index && c.page == page)
                        {
                            last.shown.push(line.clone());
                        }
                        continue;
                    }
                }
            } else {
                line.as_str()
            };
            if pending.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#'))
            {
                continue;
            }
            if !pending.is_empty() {
                pending.push('\n');
            }
            pending.push_str(line);
            if let Some(end) = &heredoc {
                if line.trim() == end {
                    heredoc = None;
                } else {
                    continue;
                }
            } else if let Some(end) = heredoc_delimiter(line) {
                heredoc = Some(end);
                continue;
            }
            if complete(&pending) {
                commands.push(DocCommand {
                    page: page.to_owned(),
                    heading: block.heading.clone(),
                    block: index,
                    text: std::mem::take(&mut pending),
                    shown: Vec::new(),
                });
            }
        }
        assert!(
            pending.is_empty(),
            "{page}, block under \"{}\": an incomplete shell command at its end:\n{pending}",
            block.heading
        );
    }
    commands
}
