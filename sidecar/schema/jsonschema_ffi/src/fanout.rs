//! Refuses at load a schema whose evaluation cannot be bounded.
//!
//! The validator applies, at one place of a document, the schema there and every schema it
//! reaches without moving into the document: "allOf"/"anyOf"/"oneOf" members, "not",
//! "if"/"then"/"else", "dependentSchemas" and "$ref". Thirty chained `allOf: [$ref, $ref]`
//! make that 2^30 applications, and listing violations collects one per path: the process
//! would stall, then abort. This counts the applications of every subschema (each once,
//! memoized, across files) and refuses the schema when one exceeds MAX_IN_PLACE, or when a
//! "$ref" reaches itself without moving into the document (evaluation would never end).
//!
//! "$ref" by JSON Pointer, by relative file, and by the "$id" of a file in the folder are
//! followed; "$anchor", "$dynamicRef" and "$recursiveRef" targets count as one.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::folder::{percent_decode, Resolver};

pub const MAX_IN_PLACE: u64 = 10_000;

/// A file a "$ref" reached, and the JSON Pointers into it that "$ref"s named.
pub struct Reached {
    pub doc: Value,
    pub targets: Vec<String>,
}

/// Checks `root` and every file its "$ref"s reach; returns those files by URI (the root
/// not included), so the caller can check their keywords too.
pub fn check(root: &Value, base: &str, resolver: &Resolver) -> Result<HashMap<String, Reached>, String> {
    let mut a = Analyzer {
        resolver,
        docs: HashMap::new(),
        targets: HashMap::new(),
        memo: HashMap::new(),
        active: HashSet::new(),
    };
    a.docs.insert(base.to_string(), root.clone());
    let mut walked = HashSet::new();
    // Every subschema of the root, then of each file a "$ref" loaded on the way.
    loop {
        let Some(doc) = a.docs.keys().find(|k| !walked.contains(*k)).cloned() else { break };
        walked.insert(doc.clone());
        let v = a.docs[&doc].clone();
        a.every_subschema(&doc, "", &v, 0)?;
    }
    a.docs.remove(base);
    let mut targets = std::mem::take(&mut a.targets);
    Ok(a.docs
        .into_iter()
        .map(|(uri, doc)| {
            let t = targets.remove(&uri).unwrap_or_default();
            (uri, Reached { doc, targets: t })
        })
        .collect())
}

struct Analyzer<'a> {
    resolver: &'a Resolver,
    docs: HashMap<String, Value>,
    targets: HashMap<String, Vec<String>>,
    memo: HashMap<(String, String), u64>,
    active: HashSet<(String, String)>,
}

/// `reference` against `base` (enough of RFC 3986 for schema folders: absolute URIs, and
/// paths relative to the base's last "/").
fn join(base: &str, reference: &str) -> String {
    if reference.contains("://") || base.is_empty() {
        return reference.to_string();
    }
    let base = base.split('#').next().unwrap_or(base);
    match base.rfind('/') {
        Some(i) => format!("{}{}", &base[..=i], reference),
        None => reference.to_string(),
    }
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

impl Analyzer<'_> {
    fn every_subschema(&mut self, doc: &str, at: &str, v: &Value, depth: usize) -> Result<(), String> {
        if depth > 256 {
            return Ok(());  // refused by the keyword checks already
        }
        match v {
            Value::Object(m) => {
                self.cost(doc, at, 0)?;
                for (k, sub) in m {
                    if k == "enum" || k == "const" || k == "examples" || k == "default" {
                        continue;  // data, not schemas
                    }
                    self.every_subschema(doc, &format!("{at}/{}", escape(k)), sub, depth + 1)?;
                }
            }
            Value::Array(a) => {
                for (i, sub) in a.iter().enumerate() {
                    self.every_subschema(doc, &format!("{at}/{i}"), sub, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The (document, pointer) a "$ref" in `doc` names, loading the document if needed; None
    /// for a target this analysis cannot follow.
    fn target(&mut self, doc: &str, reference: &str) -> Option<(String, String)> {
        let (resource, fragment) = match reference.split_once('#') {
            Some((r, f)) => (r, f),
            None => (reference, ""),
        };
        if !fragment.is_empty() && !fragment.starts_with('/') {
            return None;  // an anchor
        }
        let key = if resource.is_empty() { doc.to_string() } else { join(doc, resource) };
        if !self.docs.contains_key(&key) {
            let v = self.resolver.fetch(&key).ok()?;
            self.docs.insert(key.clone(), v);
        }
        let pointer = percent_decode(fragment);
        self.targets.entry(key.clone()).or_default().push(pointer.clone());
        Some((key, pointer))
    }

    fn cost(&mut self, doc: &str, at: &str, depth: usize) -> Result<u64, String> {
        let key = (doc.to_string(), at.to_string());
        if let Some(&c) = self.memo.get(&key) {
            return Ok(c);
        }
        if depth > 512 || !self.active.insert(key.clone()) {
            return Err(format!(
                "#{at}: evaluation cannot be bounded: a \"$ref\" reaches this schema again \
                 without moving into the document, so validating would never end"
            ));
        }
        let node = self.docs.get(doc).and_then(|d| d.pointer(at)).cloned();
        let mut total: u64 = 1;
        if let Some(Value::Object(m)) = node {
            let mut children: Vec<String> = Vec::new();
            for k in ["allOf", "anyOf", "oneOf"] {
                if let Some(Value::Array(a)) = m.get(k) {
                    children.extend((0..a.len()).map(|i| format!("{at}/{k}/{i}")));
                }
            }
            for k in ["not", "if", "then", "else"] {
                if m.contains_key(k) {
                    children.push(format!("{at}/{k}"));
                }
            }
            for k in ["dependentSchemas", "dependencies"] {
                if let Some(Value::Object(d)) = m.get(k) {
                    for (name, s) in d {
                        if s.is_object() {
                            children.push(format!("{at}/{k}/{}", escape(name)));
                        }
                    }
                }
            }
            for child in children {
                total = total.saturating_add(self.cost(doc, &child, depth + 1)?);
                if total > MAX_IN_PLACE {
                    break;
                }
            }
            if let Some(Value::String(r)) = m.get("$ref") {
                if total <= MAX_IN_PLACE {
                    if let Some((d, p)) = self.target(doc, r) {
                        total = total.saturating_add(self.cost(&d, &p, depth + 1)?);
                    }
                }
            }
        }
        self.active.remove(&key);
        if total > MAX_IN_PLACE {
            return Err(format!(
                "#{at}: evaluation cannot be bounded: it applies more than {MAX_IN_PLACE} \
                 subschemas to one value (allOf/anyOf/oneOf/$ref chains multiply); \
                 factor the shared parts into one definition"
            ));
        }
        self.memo.insert(key, total);
        Ok(total)
    }
}
