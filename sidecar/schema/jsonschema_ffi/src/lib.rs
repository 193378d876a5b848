//! A small C ABI over the `jsonschema` crate for cachecar (see json_schema.h for the C++
//! side and its contract). Everything that crosses the boundary is bytes and C strings;
//! every entry point catches panics, so a bug here becomes an error, never an abort.
//!
//! Policy that lives here because it needs the draft's vocabulary:
//! - Every keyword of the schema must be one the draft defines (and so one the validator
//!   enforces) or a known annotation; anything else, such as a misspelt "requried", is
//!   refused at compile with its place. Keywords prefixed "x-" are accepted as annotations.
//! - In drafts 4 to 7, keywords beside "$ref" are ignored by the specification, so a
//!   schema object holding "$ref" and a validation keyword is refused too.
//! - Formats are asserted in every draft, and an unknown format is refused. "uuid" is
//!   accepted in drafts 4-7 too (it is common there though only 2019-09 defines it).
//! - "$ref" resolves only to files inside the schema folder (by path, or by the "$id" of a
//!   file there), or through an explicit URL prefix map (the conformance suite's remotes).

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use jsonschema::{Draft, Retrieve, Uri, Validator};
use serde_json::{Map, Value};

pub struct Schema {
    validator: Validator,
    draft: Draft,
}

#[derive(Default)]
struct CompileOptions {
    base_uri: Option<String>,
    root_dir: Option<PathBuf>,
    url_map: Vec<(String, PathBuf)>,
    default_draft: Draft,
    strict: bool,
}

const MAX_SCHEMA_FILES: usize = 1000;
const MAX_SCHEMA_FILE_BYTES: u64 = 4 << 20;

// ---------------------------------------------------------------------------------------
// $ref resolution

struct Resolver {
    root_dir: Option<PathBuf>,
    ids: HashMap<String, Value>,
    url_map: Vec<(String, PathBuf)>,
}

fn read_json_file(path: &Path) -> Result<Value, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > MAX_SCHEMA_FILE_BYTES {
        return Err(format!("{}: larger than {} bytes", path.display(), MAX_SCHEMA_FILE_BYTES));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// Reads `rel` under `dir`, refusing anything that escapes `dir` (.., symlinks out).
fn read_inside(dir: &Path, rel: &str) -> Result<Value, String> {
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir
        .join(rel)
        .canonicalize()
        .map_err(|e| format!("{rel}: {e}"))?;
    if !path.starts_with(&dir) {
        return Err(format!("{} is outside the schema folder {}", path.display(), dir.display()));
    }
    read_json_file(&path)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Retrieve for Resolver {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let s = uri.as_str();
        let s = s.split('#').next().unwrap_or(s);
        if let Some(v) = self.ids.get(s) {
            return Ok(v.clone());
        }
        for (prefix, dir) in &self.url_map {
            if let Some(rest) = s.strip_prefix(prefix.as_str()) {
                return read_inside(dir, &percent_decode(rest)).map_err(Into::into);
            }
        }
        if let (Some(root), Some(path)) = (&self.root_dir, s.strip_prefix("file://")) {
            let path = PathBuf::from(percent_decode(path));
            let root = root.canonicalize().map_err(|e| format!("{}: {e}", root.display()))?;
            let rel = path.strip_prefix(&root).map_err(|_| {
                format!("$ref {s} is outside the schema folder {}", root.display())
            })?;
            return read_inside(&root, &rel.to_string_lossy()).map_err(Into::into);
        }
        Err(format!(
            "$ref {s} cannot be resolved: only files in the schema folder, or the $id of one, \
             are allowed (cachecar never fetches schemas over the network)"
        )
        .into())
    }
}

/// The "$id" of every JSON file under `dir` (Kubernetes' "..data" links skipped).
fn index_ids(dir: &Path, ids: &mut HashMap<String, Value>, seen: &mut usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("..") || *seen >= MAX_SCHEMA_FILES {
            continue;
        }
        *seen += 1;
        if path.is_dir() {
            index_ids(&path, ids, seen);
        } else if name.ends_with(".json") {
            if let Ok(v) = read_json_file(&path) {
                let id = v.get("$id").or_else(|| v.get("id")).and_then(Value::as_str);
                if let Some(id) = id {
                    let id = id.trim_end_matches('#').to_string();
                    ids.entry(id).or_insert(v);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The keywords each draft defines, to refuse anything the validator would ignore.

const ANNOTATIONS: &[&str] = &["title", "description", "default", "examples", "$comment",
    "readOnly", "writeOnly", "deprecated"];
const DRAFT4: &[&str] = &["$schema", "id", "$ref", "multipleOf", "maximum", "exclusiveMaximum",
    "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "additionalItems",
    "items", "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties",
    "required", "additionalProperties", "definitions", "properties", "patternProperties",
    "dependencies", "enum", "type", "format", "allOf", "anyOf", "oneOf", "not"];
const DRAFT6: &[&str] = &["$id", "const", "contains", "propertyNames"];
const DRAFT7: &[&str] = &["if", "then", "else", "contentMediaType", "contentEncoding"];
const DRAFT2019: &[&str] = &["$anchor", "$defs", "$vocabulary", "dependentRequired",
    "dependentSchemas", "maxContains", "minContains", "unevaluatedItems",
    "unevaluatedProperties", "contentSchema"];
const DRAFT2019_ONLY: &[&str] = &["$recursiveRef", "$recursiveAnchor"];
const DRAFT2020_ONLY: &[&str] = &["prefixItems", "$dynamicRef", "$dynamicAnchor"];
// Replaced in 2019-09 and later by $defs / dependentSchemas / prefixItems.
const REMOVED_IN_2019: &[&str] = &["definitions", "dependencies", "id"];

fn draft_name(d: Draft) -> &'static str {
    match d {
        Draft::Draft4 => "draft-04",
        Draft::Draft6 => "draft-06",
        Draft::Draft7 => "draft-07",
        Draft::Draft201909 => "2019-09",
        Draft::Draft202012 => "2020-12",
        _ => "unknown",
    }
}

fn is_known(d: Draft, k: &str) -> bool {
    if ANNOTATIONS.contains(&k) || k.starts_with("x-") {
        return true;
    }
    let old = matches!(d, Draft::Draft4 | Draft::Draft6 | Draft::Draft7);
    if k == "additionalItems" && d == Draft::Draft202012 {
        return false;
    }
    if DRAFT4.contains(&k) {
        if !old && REMOVED_IN_2019.contains(&k) {
            return false;
        }
        return !(k == "id" && d != Draft::Draft4);
    }
    if d == Draft::Draft4 {
        return false;
    }
    // Not a draft-06/07 keyword, but widely used there as a container that "$ref"
    // reaches by JSON Pointer, which works in any draft; its subschemas are checked.
    if k == "$defs" {
        return true;
    }
    if DRAFT6.contains(&k) {
        return true;
    }
    if d == Draft::Draft6 {
        return false;
    }
    if DRAFT7.contains(&k) {
        return true;
    }
    if d == Draft::Draft7 {
        return false;
    }
    if DRAFT2019.contains(&k) {
        return true;
    }
    if d == Draft::Draft201909 {
        return DRAFT2019_ONLY.contains(&k);
    }
    DRAFT2020_ONLY.contains(&k)
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Local "$ref" targets ("#/a/b" as "/a/b"), so a location that holds subschemas reached
/// by JSON Pointer is not mistaken for a misspelt keyword.
fn collect_ref_targets(v: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 256 {
        return;
    }
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                if let Some(frag) = r.strip_prefix('#') {
                    out.push(percent_decode(frag));
                }
            }
            for sub in m.values() {
                collect_ref_targets(sub, out, depth + 1);
            }
        }
        Value::Array(a) => a.iter().for_each(|sub| collect_ref_targets(sub, out, depth + 1)),
        _ => {}
    }
}

struct Walk<'a> {
    draft: Draft,
    ref_targets: &'a [String],
    problems: Vec<String>,
}

fn is_ref_target(w: &Walk, at: &str) -> bool {
    w.ref_targets.iter().any(|t| t == at || t.starts_with(&format!("{at}/")))
}

/// Walks every subschema; appends one problem per keyword that would not be enforced.
fn check_keywords(w: &mut Walk, v: &Value, at: &str, depth: usize) {
    let d = w.draft;
    if depth > 256 {
        w.problems.push(format!("{at}: schema nested deeper than 256 levels"));
        return;
    }
    let Some(obj) = v.as_object() else { return };
    let old = matches!(d, Draft::Draft4 | Draft::Draft6 | Draft::Draft7);
    if old && obj.contains_key("$ref") {
        let ignored: Vec<&str> = obj
            .keys()
            .map(String::as_str)
            .filter(|k| !ANNOTATIONS.contains(k) && !k.starts_with("x-"))
            .filter(|k| !matches!(*k, "$ref" | "$schema" | "$id" | "id" | "definitions"))
            .collect();
        if !ignored.is_empty() {
            w.problems.push(format!(
                "#{at}: {} beside \"$ref\" would be ignored in {} (keywords next to $ref do not \
                 apply); move them into an \"allOf\" with the $ref",
                ignored.join(", "),
                draft_name(d)
            ));
        }
    }
    for (k, sub) in obj {
        let here = format!("{at}/{}", escape_pointer(k));
        if !is_known(d, k) {
            if is_ref_target(w, &here) {
                // A container of subschemas that "$ref" points into: walk what it holds.
                if let Value::Object(m) = sub {
                    if m.keys().all(|k| is_known(d, k)) {
                        check_keywords(w, sub, &here, depth + 1);
                    } else {
                        check_map(w, m, &here, depth);
                    }
                }
                continue;
            }
            w.problems.push(format!(
                "#{here}: keyword \"{k}\" is not part of {} and would not be enforced; fix \
                 its spelling, or prefix an annotation with \"x-\"",
                draft_name(d)
            ));
            continue;
        }
        match k.as_str() {
            "additionalItems" | "additionalProperties" | "contains" | "not" | "if" | "then"
            | "else" | "propertyNames" | "unevaluatedItems" | "unevaluatedProperties"
            | "contentSchema" => check_keywords(w, sub, &here, depth + 1),
            "items" => match sub {
                Value::Array(a) => check_array(w, a, &here, depth),
                _ => check_keywords(w, sub, &here, depth + 1),
            },
            "allOf" | "anyOf" | "oneOf" | "prefixItems" => {
                if let Value::Array(a) = sub {
                    check_array(w, a, &here, depth);
                }
            }
            "properties" | "patternProperties" | "definitions" | "$defs" | "dependentSchemas"
            | "dependencies" => {
                if let Value::Object(m) = sub {
                    check_map(w, m, &here, depth);
                }
            }
            _ => {}
        }
    }
}

fn check_array(w: &mut Walk, a: &[Value], at: &str, depth: usize) {
    for (i, s) in a.iter().enumerate() {
        check_keywords(w, s, &format!("{at}/{i}"), depth + 1);
    }
}

fn check_map(w: &mut Walk, m: &Map<String, Value>, at: &str, depth: usize) {
    for (name, s) in m {
        // dependencies: an array of property names is not a schema.
        if s.is_object() || s.is_boolean() {
            check_keywords(w, s, &format!("{at}/{}", escape_pointer(name)), depth + 1);
        }
    }
}

// ---------------------------------------------------------------------------------------

fn parse_draft(s: &str) -> Option<Draft> {
    match s {
        "draft-04" | "draft4" | "4" => Some(Draft::Draft4),
        "draft-06" | "draft6" | "6" => Some(Draft::Draft6),
        "draft-07" | "draft7" | "7" => Some(Draft::Draft7),
        "2019-09" => Some(Draft::Draft201909),
        "2020-12" => Some(Draft::Draft202012),
        _ => None,
    }
}

fn parse_options(text: &[u8]) -> Result<CompileOptions, String> {
    let mut o = CompileOptions { default_draft: Draft::Draft7, strict: true, ..Default::default() };
    if text.is_empty() {
        return Ok(o);
    }
    let v: Value = serde_json::from_slice(text).map_err(|e| format!("bad options: {e}"))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    o.base_uri = s("base_uri");
    o.root_dir = s("root_dir").map(PathBuf::from);
    if let Some(d) = s("default_draft") {
        o.default_draft = parse_draft(&d).ok_or_else(|| format!("unknown draft {d}"))?;
    }
    if let Some(b) = v.get("strict").and_then(Value::as_bool) {
        o.strict = b;
    }
    if let Some(m) = v.get("url_map").and_then(Value::as_object) {
        for (prefix, dir) in m {
            if let Some(dir) = dir.as_str() {
                o.url_map.push((prefix.clone(), PathBuf::from(dir)));
            }
        }
    }
    Ok(o)
}

fn compile(schema: &[u8], options: &[u8]) -> Result<Schema, String> {
    let o = parse_options(options)?;
    let value: Value = serde_json::from_slice(schema).map_err(|e| format!("not JSON: {e}"))?;
    if !value.is_object() && !value.is_boolean() {
        return Err("a schema must be a JSON object (or true/false)".into());
    }
    let draft = o.default_draft.detect(&value);
    if draft == Draft::Unknown {
        let uri = value.get("$schema").and_then(Value::as_str).unwrap_or("");
        return Err(format!(
            "$schema {uri:?} is not a draft cachecar supports (draft-04, draft-06, draft-07, \
             2019-09, 2020-12)"
        ));
    }
    if o.strict {
        let mut ref_targets = Vec::new();
        collect_ref_targets(&value, &mut ref_targets, 0);
        let mut w = Walk { draft, ref_targets: &ref_targets, problems: Vec::new() };
        check_keywords(&mut w, &value, "", 0);
        if !w.problems.is_empty() {
            return Err(w.problems.join("; "));
        }
    }
    let mut ids = HashMap::new();
    if let Some(dir) = &o.root_dir {
        let mut seen = 0;
        index_ids(dir, &mut ids, &mut seen);
    }
    let resolver = Resolver { root_dir: o.root_dir.clone(), ids, url_map: o.url_map.clone() };
    let mut builder = jsonschema::options()
        .with_draft(draft)
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_retriever(resolver);
    if matches!(draft, Draft::Draft4 | Draft::Draft6 | Draft::Draft7) {
        // "uuid" became a format in 2019-09, but draft-07 schemas in the wild (Confluent
        // Schema Registry's among them) use it; enforce it rather than refuse it.
        builder = builder.with_format("uuid", is_uuid);
    }
    if let Some(base) = &o.base_uri {
        builder = builder.with_base_uri(base.clone());
    }
    let validator = builder.build(&value).map_err(|e| {
        let at = e.schema_path().as_str().to_string();
        if at.is_empty() { e.to_string() } else { format!("#{at}: {e}") }
    })?;
    Ok(Schema { validator, draft })
}

/// RFC 4122 text form: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn to_c_string(s: String) -> *mut c_char {
    CString::new(s.replace('\0', "\\u0000")).map(CString::into_raw).unwrap_or(std::ptr::null_mut())
}

unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 { &[] } else { std::slice::from_raw_parts(p, len) }
}

/// Compiles a schema. On failure returns null and sets *error to a message (free it with
/// ccjs_string_free).
#[no_mangle]
pub unsafe extern "C" fn ccjs_compile(
    schema: *const u8,
    schema_len: usize,
    options: *const u8,
    options_len: usize,
    error: *mut *mut c_char,
) -> *mut Schema {
    let schema = bytes(schema, schema_len);
    let options = bytes(options, options_len);
    let result = catch_unwind(AssertUnwindSafe(|| compile(schema, options)))
        .unwrap_or_else(|_| Err("internal error in the schema compiler".into()));
    match result {
        Ok(s) => Box::into_raw(Box::new(s)),
        Err(e) => {
            if !error.is_null() {
                *error = to_c_string(e);
            }
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn ccjs_schema_free(schema: *mut Schema) {
    if !schema.is_null() {
        drop(Box::from_raw(schema));
    }
}

/// "draft-07", "2020-12", ...: the draft the schema was compiled as.
#[no_mangle]
pub unsafe extern "C" fn ccjs_schema_draft(schema: *const Schema) -> *const c_char {
    let name: &'static [u8] = match (*schema).draft {
        Draft::Draft4 => b"draft-04\0",
        Draft::Draft6 => b"draft-06\0",
        Draft::Draft7 => b"draft-07\0",
        Draft::Draft201909 => b"2019-09\0",
        Draft::Draft202012 => b"2020-12\0",
        _ => b"unknown\0",
    };
    name.as_ptr() as *const c_char
}

/// 0: valid; 1: not valid; 2: not JSON; 3: internal error.
#[no_mangle]
pub unsafe extern "C" fn ccjs_check(schema: *const Schema, doc: *const u8, len: usize) -> i32 {
    let doc = bytes(doc, len);
    let s = &*schema;
    catch_unwind(AssertUnwindSafe(|| match serde_json::from_slice::<Value>(doc) {
        Err(_) => 2,
        Ok(v) => i32::from(!s.validator.is_valid(&v)),
    }))
    .unwrap_or(3)
}

/// Every violation of `doc`, up to `max_errors`, as a JSON document:
///   {"errors": [{"pointer": "/a/0", "keyword": "type", "message": "..."}]}
/// or {"json_error": "..."} when doc is not JSON. With mask_values, messages do not quote
/// the document's values (for logs). Free the result with ccjs_string_free.
#[no_mangle]
pub unsafe extern "C" fn ccjs_explain(
    schema: *const Schema,
    doc: *const u8,
    len: usize,
    max_errors: usize,
    mask_values: i32,
) -> *mut c_char {
    let doc = bytes(doc, len);
    let s = &*schema;
    let out = catch_unwind(AssertUnwindSafe(|| {
        let v: Value = match serde_json::from_slice(doc) {
            Ok(v) => v,
            Err(e) => return serde_json::json!({ "json_error": e.to_string() }).to_string(),
        };
        let mut errors = Vec::new();
        for e in s.validator.iter_errors(&v).take(max_errors.max(1)) {
            let mut message = String::new();
            if mask_values != 0 {
                let _ = write!(message, "{}", e.masked());
            } else {
                let _ = write!(message, "{e}");
            }
            errors.push(serde_json::json!({
                "pointer": e.instance_path().as_str(),
                "keyword": e.kind().keyword(),
                "message": message,
            }));
        }
        serde_json::json!({ "errors": errors }).to_string()
    }))
    .unwrap_or_else(|_| r#"{"json_error":"internal error in the validator"}"#.to_string());
    to_c_string(out)
}

#[no_mangle]
pub unsafe extern "C" fn ccjs_string_free(s: *mut c_char) {
    if !s.is_null() {
        drop(CString::from_raw(s));
    }
}
