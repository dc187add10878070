//! A small spanned YAML tree built from `saphyr-parser` events.
//!
//! Every node keeps the line and column where it starts, so that unknown keys, type errors and
//! validation errors can all point at the exact place in the operator's file. Building the tree
//! enforces the limits below, so that hostile input (alias bombs, deep nesting, huge files)
//! is refused before any work proportional to its expansion is done.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::Location;

/// Largest configuration file accepted, in bytes. Real files are a few kilobytes.
pub const MAX_CONFIG_FILE_BYTES: usize = 1024 * 1024;

/// Deepest nesting of mappings and sequences accepted. The deepest real key
/// (`monitoring.metrics[i].name`) sits at depth 4; the margin allows for future sections.
/// The limit also bounds recursion in the code that walks and drops the tree.
pub const MAX_YAML_DEPTH: usize = 32;

/// Most nodes the tree may hold, counting every copy that an alias (`*name`) expands to.
/// This is what defeats "billion laughs" alias bombs: expansion stops at this bound.
pub const MAX_YAML_NODES: usize = 50_000;

/// A YAML node with its position.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) location: Location,
    /// Number of nodes in this subtree, itself included; used to charge alias expansion.
    size: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NodeKind {
    /// A scalar as written; `plain` is false for quoted and block scalars, which are never null.
    Scalar {
        text: String,
        plain: bool,
    },
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

impl Node {
    /// True for an absent value: an empty plain scalar, `~` or `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// How the node is described in "found ..." messages.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            NodeKind::Scalar { text, .. } => format!("{text:?}"),
            NodeKind::Sequence(_) => "a sequence".to_owned(),
            NodeKind::Mapping(_) => "a mapping".to_owned(),
        }
    }
}

/// A syntax or limit error, with the parser's own message.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SyntaxError {
    pub(crate) location: Location,
    pub(crate) message: String,
}

fn location_of(span: &Span) -> Location {
    Location {
        line: span.start.line().max(1),
        column: span.start.col() + 1,
    }
}

enum Frame {
    Sequence {
        items: Vec<Node>,
        location: Location,
        anchor: usize,
    },
    Mapping {
        entries: Vec<(Node, Node)>,
        pending_key: Option<Node>,
        location: Location,
        anchor: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    nodes: usize,
}

impl Builder {
    fn charge(&mut self, count: usize, location: Location) -> Result<(), SyntaxError> {
        self.nodes = self.nodes.saturating_add(count);
        if self.nodes > MAX_YAML_NODES {
            return Err(SyntaxError {
                location,
                message: format!(
                    "document too large: more than {MAX_YAML_NODES} nodes (aliases included)"
                ),
            });
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, location: Location) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_YAML_DEPTH {
            return Err(SyntaxError {
                location,
                message: format!("nesting deeper than {MAX_YAML_DEPTH} levels"),
            });
        }
        self.charge(1, location)?;
        self.stack.push(frame);
        Ok(())
    }

    /// Attaches a finished node to its parent (or makes it the root) and records its anchor.
    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Sequence { items, .. }) => items.push(node),
            Some(Frame::Mapping {
                entries,
                pending_key,
                ..
            }) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }

    fn close(&mut self) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let (kind, location, anchor) = match frame {
            Frame::Sequence {
                items,
                location,
                anchor,
            } => (NodeKind::Sequence(items), location, anchor),
            Frame::Mapping {
                entries,
                location,
                anchor,
                ..
            } => (NodeKind::Mapping(entries), location, anchor),
        };
        let size = 1 + match &kind {
            NodeKind::Scalar { .. } => 0,
            NodeKind::Sequence(items) => items.iter().map(|n| n.size).sum(),
            NodeKind::Mapping(entries) => entries.iter().map(|(k, v)| k.size + v.size).sum(),
        };
        self.complete(
            Node {
                kind,
                location,
                size,
            },
            anchor,
        );
    }
}

/// Parses one YAML document into a spanned tree. An empty stream yields `None`.
///
/// A panic inside the parser (a bug there, never seen in fuzzing) is turned into an error:
/// a bad configuration file must not crash the process with a backtrace.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    std::panic::catch_unwind(|| parse_unguarded(text)).unwrap_or_else(|_| {
        Err(SyntaxError {
            location: Location::START,
            message: "invalid YAML: the parser failed on this input".to_owned(),
        })
    })
}

fn parse_unguarded(text: &str) -> Result<Option<Node>, SyntaxError> {
    if text.len() > MAX_CONFIG_FILE_BYTES {
        return Err(SyntaxError {
            location: Location { line: 1, column: 1 },
            message: format!(
                "file is {} bytes, larger than the limit of {MAX_CONFIG_FILE_BYTES} bytes",
                text.len()
            ),
        });
    }
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        nodes: 0,
    };
    let mut documents = 0usize;
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|error| SyntaxError {
            location: Location {
                line: error.marker().line().max(1),
                column: error.marker().col() + 1,
            },
            message: format!("invalid YAML: {}", error.info()),
        })?;
        let location = location_of(&span);
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        location,
                        message: "a second YAML document; a configuration file holds one"
                            .to_owned(),
                    });
                }
            }
            Event::Alias(id) => {
                let Some(node) = builder.anchors.get(&id).cloned() else {
                    return Err(SyntaxError {
                        location,
                        message: "alias to an unknown anchor".to_owned(),
                    });
                };
                builder.charge(node.size, location)?;
                builder.complete(node, 0);
            }
            Event::Scalar(value, style, anchor, tag) => {
                check_tag(tag.as_deref(), location)?;
                builder.charge(1, location)?;
                let node = Node {
                    kind: NodeKind::Scalar {
                        text: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                    location,
                    size: 1,
                };
                builder.complete(node, anchor);
            }
            Event::SequenceStart(anchor, tag) => {
                check_tag(tag.as_deref(), location)?;
                let frame = Frame::Sequence {
                    items: Vec::new(),
                    location,
                    anchor,
                };
                builder.open(frame, location)?;
            }
            Event::MappingStart(anchor, tag) => {
                check_tag(tag.as_deref(), location)?;
                let frame = Frame::Mapping {
                    entries: Vec::new(),
                    pending_key: None,
                    location,
                    anchor,
                };
                builder.open(frame, location)?;
            }
            Event::SequenceEnd | Event::MappingEnd => builder.close(),
        }
    }
    Ok(builder.root)
}

/// Only the core schema's tags (`!!str`, `!!int`, ...) are accepted, and they change nothing:
/// each key decides how its value is read. Application tags have no meaning here.
fn check_tag(tag: Option<&saphyr_parser::Tag>, location: Location) -> Result<(), SyntaxError> {
    match tag {
        Some(tag) if !tag.is_yaml_core_schema() => Err(SyntaxError {
            location,
            message: format!("unsupported tag `{tag}`"),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let root = parse("p2p:\n  port: 70000\n").unwrap().unwrap();
        let NodeKind::Mapping(entries) = &root.kind else {
            panic!("not a mapping")
        };
        let NodeKind::Mapping(inner) = &entries[0].1.kind else {
            panic!("not a mapping")
        };
        assert_eq!(inner[0].0.location, Location { line: 2, column: 3 });
        assert_eq!(inner[0].1.location, Location { line: 2, column: 9 });
    }

    #[test]
    fn empty_stream_is_none() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_owned()
            } else {
                format!("l{}", i - 1)
            };
            text.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        let error = parse(&text).unwrap_err();
        assert!(error.message.contains("document too large"), "{error:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let error = parse(&text).unwrap_err();
        assert!(error.message.contains("nesting deeper"), "{error:?}");
        // The parser refuses far deeper flow nesting on its own.
        assert!(parse(&"[".repeat(100_000)).is_err());
        let mut block = String::new();
        for depth in 0..40 {
            block.push_str(&format!("{}k{depth}:\n", " ".repeat(depth)));
        }
        assert!(
            parse(&block)
                .unwrap_err()
                .message
                .contains("nesting deeper")
        );
    }

    #[test]
    fn second_document_is_refused() {
        let error = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(error.location.line, 2);
    }
}
