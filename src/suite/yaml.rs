//! A YAML document as a tree whose every node knows its line and column.
//!
//! Suites are parsed from YAML events (yaml-rust2) into [`Node`]s so that the validation
//! pass can point at the exact place of every mistake. The tree converts to a
//! `serde_json::Value` for typed deserialization; positions are looked up by path.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One YAML node with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

/// The shape of a node; plain scalars are resolved to YAML 1.2 core types.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys keep their own position so that an unknown key can be pointed at.
    Map(Vec<(Node, Node)>),
}

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl From<&str> for Seg {
    fn from(s: &str) -> Self {
        Seg::Key(s.to_string())
    }
}
impl From<String> for Seg {
    fn from(s: String) -> Self {
        Seg::Key(s)
    }
}
impl From<&String> for Seg {
    fn from(s: &String) -> Self {
        Seg::Key(s.clone())
    }
}
impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// Renders a path the way users write it: `slos[1].probe`.
pub fn path_string(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        "(top level)".to_string()
    } else {
        out
    }
}

/// A YAML syntax error, or a document over the loader's limits, with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
    pub hint: Option<String>,
}

/// Most nodes a document may have once its aliases are expanded. An alias copies its anchored
/// node wherever it is used, so nine nested aliases of nine make 9^9 nodes from a few hundred
/// bytes (the "billion laughs"); the example suites have under 300 nodes.
pub const MAX_NODES: usize = 100_000;
/// Most scalar text (bytes, keys included) that aliases may copy into a document.
pub const MAX_ALIAS_BYTES: usize = 4 << 20;
/// Deepest nesting of sequences and maps (the example suites nest 7 deep).
pub const MAX_DEPTH: usize = 64;
/// Largest suite file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

fn pos_of(m: &Marker) -> Pos {
    // yaml-rust2 lines are 1-based, columns 0-based.
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// The nodes and the scalar bytes of a subtree.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
}

impl Size {
    fn add(&mut self, other: Size) {
        self.nodes += other.nodes;
        self.bytes += other.bytes;
    }
}

enum Frame {
    Seq(Pos, Vec<Node>, usize, Size),
    Map(Pos, Vec<(Node, Node)>, Option<Node>, usize, Size),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, (Node, Size)>,
    /// Nodes in the document so far, aliases expanded.
    nodes: usize,
    /// Scalar bytes copied by aliases so far.
    alias_bytes: usize,
}

fn limit_error(pos: Pos, message: String, hint: &str) -> SyntaxError {
    SyntaxError {
        pos,
        message,
        hint: Some(hint.to_string()),
    }
}

impl Builder {
    fn push_value(&mut self, node: Node, size: Size, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), size));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(_, items, _, total)) => {
                total.add(size);
                items.push(node);
            }
            Some(Frame::Map(_, entries, key, _, total)) => {
                total.add(size);
                match key.take() {
                    None => *key = Some(node),
                    Some(k) => entries.push((k, node)),
                }
            }
        }
    }

    /// Counts `size` more nodes at `pos`; `alias` when an alias copies them.
    fn count(&mut self, pos: Pos, size: Size, alias: bool) -> Result<(), SyntaxError> {
        self.nodes += size.nodes;
        if alias {
            self.alias_bytes += size.bytes;
        }
        if self.nodes > MAX_NODES {
            return Err(if alias {
                limit_error(
                    pos,
                    format!(
                        "aliases expand the document past {MAX_NODES} nodes (this alias copies {}: an alias copies its anchored node, so nested aliases multiply)",
                        size.nodes
                    ),
                    "a suite needs far fewer nodes; use fewer or smaller aliases",
                )
            } else {
                limit_error(
                    pos,
                    format!("the document has more than {MAX_NODES} nodes"),
                    "a suite needs far fewer; golden cases belong in JSONL files (`golden:`)",
                )
            });
        }
        if self.alias_bytes > MAX_ALIAS_BYTES {
            return Err(limit_error(
                pos,
                format!(
                    "aliases copy more than {} MiB of text into the document",
                    MAX_ALIAS_BYTES >> 20
                ),
                "anchor smaller values, or put long text in a file and read it with ${file:PATH}",
            ));
        }
        Ok(())
    }

    fn open(&mut self, pos: Pos) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(limit_error(
                pos,
                format!("nesting deeper than {MAX_DEPTH} levels"),
                "a suite nests a few levels deep; check for unclosed brackets",
            ));
        }
        self.count(pos, Size { nodes: 1, bytes: 0 }, false)
    }

    fn on_event(&mut self, ev: Event, mark: Marker) -> Result<(), SyntaxError> {
        let pos = pos_of(&mark);
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let size = Size {
                    nodes: 1,
                    bytes: value.len(),
                };
                self.count(pos, size, false)?;
                let kind = if style == TScalarStyle::Plain && tag.is_none() {
                    resolve_plain(&value)
                } else {
                    Kind::Str(value)
                };
                self.push_value(Node { pos, kind }, size, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.open(pos)?;
                let one = Size { nodes: 1, bytes: 0 };
                self.stack.push(Frame::Seq(pos, Vec::new(), anchor, one));
            }
            Event::MappingStart(anchor, _) => {
                self.open(pos)?;
                let one = Size { nodes: 1, bytes: 0 };
                self.stack
                    .push(Frame::Map(pos, Vec::new(), None, anchor, one));
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(p, items, anchor, size)) = self.stack.pop() {
                    let node = Node {
                        pos: p,
                        kind: Kind::Seq(items),
                    };
                    self.push_value(node, size, anchor);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(p, entries, _, anchor, size)) = self.stack.pop() {
                    let node = Node {
                        pos: p,
                        kind: Kind::Map(entries),
                    };
                    self.push_value(node, size, anchor);
                }
            }
            Event::Alias(id) => {
                // An anchor is known once its node is complete, so an alias inside its own
                // anchored node (a cycle) is unknown here.
                let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                    return Err(SyntaxError {
                        pos,
                        message: "alias refers to an unknown anchor".into(),
                        hint: Some(
                            "define `&name` before `*name`, outside the node that uses it".into(),
                        ),
                    });
                };
                // Counted before the copy is made.
                self.count(pos, size, true)?;
                let Some(mut node) = self.anchors.get(&id).map(|(n, _)| n.clone()) else {
                    return Ok(());
                };
                node.pos = pos;
                self.push_value(node, size, 0);
            }
            _ => {}
        }
        Ok(())
    }
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(v: &str) -> Kind {
    match v {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        _ => {}
    }
    if let Ok(i) = v.parse::<i64>() {
        return Kind::Int(i);
    }
    let looks_numeric = v
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        && v.chars().any(|c| c.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = v.parse::<f64>() {
            return Kind::Float(f);
        }
    }
    Kind::Str(v.to_string())
}

/// Parses one YAML document (the first of a stream). An empty document is an empty map.
/// Events are read one at a time and the document is refused as soon as it passes
/// [`MAX_NODES`], [`MAX_ALIAS_BYTES`] or [`MAX_DEPTH`], before anything larger is built.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(src);
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| SyntaxError {
            pos: pos_of(e.marker()),
            message: e.info().to_string(),
            hint: None,
        })?;
        match ev {
            Event::StreamEnd | Event::DocumentEnd => break,
            ev => builder.on_event(ev, mark)?,
        }
    }
    Ok(builder.root.unwrap_or(Node {
        pos: Pos { line: 1, col: 1 },
        kind: Kind::Map(Vec::new()),
    }))
}

/// Reads a text file of at most `limit` bytes (a suite: [`MAX_FILE_BYTES`]); a larger one,
/// or a device that never ends, is an error, not an unbounded read.
pub fn read_capped(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    let n = std::fs::File::open(path)?
        .take(limit + 1)
        .read_to_string(&mut text)?;
    if n as u64 > limit {
        return Err(std::io::Error::other(format!(
            "larger than {} bytes",
            limit
        )));
    }
    Ok(text)
}

impl Node {
    /// The child at `seg`, if any.
    pub fn child(&self, seg: &Seg) -> Option<&Node> {
        match (&self.kind, seg) {
            (Kind::Map(entries), Seg::Key(k)) => entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k.as_str()))
                .map(|(_, v)| v),
            (Kind::Seq(items), Seg::Index(i)) => items.get(*i),
            _ => None,
        }
    }

    /// The key node of `key` in this map.
    pub fn key_node(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(k, _)| k),
            _ => None,
        }
    }

    /// Position of the deepest existing node along `path` (so a missing key points at its parent).
    pub fn pos_at(&self, path: &[Seg]) -> Pos {
        let mut node = self;
        for seg in path {
            match node.child(seg) {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }

    /// Position of a key itself (for unknown-key errors); falls back to `pos_at`.
    pub fn key_pos_at(&self, path: &[Seg]) -> Pos {
        if let Some((Seg::Key(last), parent)) = path.split_last() {
            let mut node = self;
            for seg in parent {
                match node.child(seg) {
                    Some(n) => node = n,
                    None => return self.pos_at(path),
                }
            }
            if let Some(k) = node.key_node(last) {
                return k.pos;
            }
        }
        self.pos_at(path)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts to JSON. Non-string keys are stringified as YAML would print them.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => {
                let mut map = serde_json::Map::new();
                for (k, v) in entries {
                    map.insert(k.scalar_text(), v.to_json());
                }
                Value::Object(map)
            }
        }
    }

    /// The text of a scalar (used for map keys).
    pub fn scalar_text(&self) -> String {
        match &self.kind {
            Kind::Null => "null".into(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            Kind::Str(s) => s.clone(),
            Kind::Seq(_) | Kind::Map(_) => "<complex key>".into(),
        }
    }

    /// Visits every string scalar (not keys) mutably, with its path.
    pub fn for_each_string_mut(
        &mut self,
        path: &mut Vec<Seg>,
        f: &mut dyn FnMut(&[Seg], Pos, &mut String),
    ) {
        let pos = self.pos;
        match &mut self.kind {
            Kind::Str(s) => f(path, pos, s),
            Kind::Seq(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(Seg::Index(i));
                    item.for_each_string_mut(path, f);
                    path.pop();
                }
            }
            Kind::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    path.push(Seg::Key(k.scalar_text()));
                    v.for_each_string_mut(path, f);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// Duplicate keys in any map, with the position of the second occurrence.
    pub fn duplicate_keys(&self, path: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, Pos)>) {
        match &self.kind {
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    item.duplicate_keys(path, out);
                    path.pop();
                }
            }
            Kind::Map(entries) => {
                let mut seen = std::collections::HashSet::new();
                for (k, v) in entries {
                    let key = k.scalar_text();
                    path.push(Seg::Key(key.clone()));
                    if !seen.insert(key) {
                        out.push((path.clone(), k.pos));
                    }
                    v.duplicate_keys(path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let doc = parse("suite: a\nprobes:\n  - name: x\n    endpoint: chat\n").unwrap();
        let p = doc.pos_at(&["probes".into(), 0.into(), "endpoint".into()]);
        assert_eq!(p, Pos { line: 4, col: 15 });
        let k = doc.key_pos_at(&["probes".into(), 0.into(), "endpoint".into()]);
        assert_eq!(k, Pos { line: 4, col: 5 });
    }

    #[test]
    fn plain_scalars_resolve_but_quoted_stay_strings() {
        let doc = parse("a: 1\nb: '1'\nc: 1.5\nd: true\ne: ~\nf: 250ms\ng: 1e3\n").unwrap();
        let j = doc.to_json();
        assert_eq!(j["a"], serde_json::json!(1));
        assert_eq!(j["b"], serde_json::json!("1"));
        assert_eq!(j["c"], serde_json::json!(1.5));
        assert_eq!(j["d"], serde_json::json!(true));
        assert_eq!(j["e"], serde_json::Value::Null);
        assert_eq!(j["f"], serde_json::json!("250ms"));
        assert_eq!(j["g"], serde_json::json!(1000.0));
    }

    #[test]
    fn aliases_copy_the_anchored_node() {
        let doc = parse("base: &h {x: 1}\nother: *h\n").unwrap();
        assert_eq!(doc.to_json()["other"]["x"], serde_json::json!(1));
    }

    /// Nine levels of nine aliases each: 9^9 (387 million) scalars from 354 bytes.
    fn laughs(levels: usize) -> String {
        let mut doc = String::from("a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n");
        for i in 1..levels {
            let (name, prev) = ((b'a' + i as u8) as char, (b'a' + i as u8 - 1) as char);
            let refs = vec![format!("*{prev}"); 9].join(",");
            doc.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        doc
    }

    #[test]
    fn an_alias_bomb_is_refused_at_the_alias_that_passes_the_cap() {
        let t = std::time::Instant::now();
        let err = parse(&laughs(9)).unwrap_err();
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
        assert!(err.message.contains("aliases expand"), "{err:?}");
        assert!(err.hint.is_some());
        // Line 6 (`f`) copies 9 x 7381 nodes of `e` (9^4 scalars and 820 sequences).
        assert_eq!(err.pos.line, 6, "{err:?}");
        // Five levels (66,430 nodes) are within the cap and load whole.
        let doc = parse(&laughs(5)).unwrap();
        assert_eq!(doc.to_json()["e"][8][8][8][8][8], serde_json::json!("lol"));
    }

    #[test]
    fn aliases_copying_too_much_text_are_refused() {
        let big = "x".repeat(64 << 10);
        let mut doc = format!("a: &a \"{big}\"\nb:\n");
        for _ in 0..100 {
            doc.push_str("  - *a\n");
        }
        let err = parse(&doc).unwrap_err();
        assert!(err.message.contains("MiB of text"), "{err:?}");
    }

    #[test]
    fn deep_nesting_and_self_reference_are_errors_not_crashes() {
        let deep = format!("a: {}1{}\n", "[".repeat(100), "]".repeat(100));
        let err = parse(&deep).unwrap_err();
        assert!(err.message.contains("nesting deeper"), "{err:?}");
        let mut block = String::new();
        for i in 0..200 {
            block.push_str(&format!("{}k{i}:\n", "  ".repeat(i)));
        }
        assert!(parse(&block)
            .unwrap_err()
            .message
            .contains("nesting deeper"));
        let err = parse("a: &a [1, *a]\n").unwrap_err();
        assert!(err.message.contains("unknown anchor"), "{err:?}");
    }

    #[test]
    fn a_large_plain_document_is_refused_past_the_node_cap() {
        let doc = "- x\n".repeat(MAX_NODES + 1);
        let err = parse(&doc).unwrap_err();
        assert!(err.message.contains("more than"), "{err:?}");
        assert!(parse(&"- x\n".repeat(1000)).is_ok());
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
    }

    #[test]
    fn duplicate_keys_are_found() {
        let doc = parse("a: 1\nb: 2\na: 3\n").unwrap();
        let mut out = Vec::new();
        doc.duplicate_keys(&mut Vec::new(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.line, 3);
    }

    #[test]
    fn empty_document_is_an_empty_map() {
        assert_eq!(parse("").unwrap().kind, Kind::Map(vec![]));
    }
}
