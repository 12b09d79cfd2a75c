//! A YAML document as a tree whose every node knows its line and column.
//!
//! Suites are parsed from YAML events (yaml-rust2) into [`Node`]s so that the validation
//! pass can point at the exact place of every mistake. The tree converts to a
//! `serde_json::Value` for typed deserialization; positions are looked up by path.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
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

/// A YAML syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

fn pos_of(m: &Marker) -> Pos {
    // yaml-rust2 lines are 1-based, columns 0-based.
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

enum Frame {
    Seq(Pos, Vec<Node>, usize),
    Map(Pos, Vec<(Node, Node)>, Option<Node>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    anchors: HashMap<usize, Node>,
    error: Option<SyntaxError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(_, entries, key, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let pos = pos_of(&mark);
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let kind = if style == TScalarStyle::Plain && tag.is_none() {
                    resolve_plain(&value)
                } else {
                    Kind::Str(value)
                };
                self.push_value(Node { pos, kind }, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(pos, Vec::new(), anchor)),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(pos, Vec::new(), None, anchor))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(p, items, anchor)) = self.stack.pop() {
                    self.push_value(
                        Node {
                            pos: p,
                            kind: Kind::Seq(items),
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(p, entries, _, anchor)) = self.stack.pop() {
                    self.push_value(
                        Node {
                            pos: p,
                            kind: Kind::Map(entries),
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    node.pos = pos;
                    self.push_value(node, 0);
                }
                None => {
                    self.error.get_or_insert(SyntaxError {
                        pos,
                        message: "alias refers to an unknown anchor".into(),
                    });
                }
            },
            _ => {}
        }
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

/// Parses one YAML document. An empty document is an empty map.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(src);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        pos: pos_of(e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.root.unwrap_or(Node {
        pos: Pos { line: 1, col: 1 },
        kind: Kind::Map(Vec::new()),
    }))
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
