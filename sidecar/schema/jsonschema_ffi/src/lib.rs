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

// The Rust side allocates a small object per JSON value (jaq builds and drops thousands
// per record): mimalloc makes a transform ~20% cheaper than glibc's malloc
// (bench/transform_bench). C++ allocations are not affected.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod fanout;
mod folder;
mod avro;
mod jq;
mod json;

use std::collections::HashMap;
use std::ffi::{c_char, CString};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{Draft, PatternOptions, ValidationError, Validator};
use serde_json::{Map, Value};

use folder::{percent_decode, Resolver};

pub struct Schema {
    validator: Validator,
    draft: Draft,
    /// With backtracking patterns: the longest string a document may hold, the other half
    /// of their budget (a backtracking match can cost steps times length).
    max_backtracking_string: Option<usize>,
}

#[derive(Default)]
struct CompileOptions {
    base_uri: Option<String>,
    root_dir: Option<PathBuf>,
    url_map: Vec<(String, PathBuf)>,
    documents: Vec<(String, String)>,
    default_draft: Draft,
    strict: bool,
    /// Run patterns that need backtracking (lookaround, backreferences) with fancy-regex,
    /// at most `backtrack_limit` steps per match; refused at load otherwise.
    backtracking_patterns: bool,
    backtrack_limit: usize,
    backtracking_max_string_bytes: usize,
    assert_formats: bool,
}

/// Bytes of a document value a violation message quotes, and of a whole message ("…"
/// included; json_schema.h's kMaxViolationMessageBytes).
const MAX_QUOTE_BYTES: usize = 64;
const MAX_MESSAGE_BYTES: usize = 512;

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
    let mut o = CompileOptions {
        default_draft: Draft::Draft7,
        strict: true,
        backtrack_limit: 10_000,
        backtracking_max_string_bytes: 4096,
        assert_formats: true,
        ..Default::default()
    };
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
    if let Some(b) = v.get("backtracking_patterns").and_then(Value::as_bool) {
        o.backtracking_patterns = b;
    }
    if let Some(n) = v.get("backtrack_limit").and_then(Value::as_u64) {
        o.backtrack_limit = usize::try_from(n).unwrap_or(usize::MAX).max(1);
    }
    if let Some(n) = v.get("backtracking_max_string_bytes").and_then(Value::as_u64) {
        o.backtracking_max_string_bytes = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(b) = v.get("assert_formats").and_then(Value::as_bool) {
        o.assert_formats = b;
    }
    if let Some(m) = v.get("documents").and_then(Value::as_object) {
        for (name, text) in m {
            if let Some(text) = text.as_str() {
                o.documents.push((name.clone(), text.to_string()));
            }
        }
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
    let value: Value = json::parse(schema).map_err(|e| format!("not JSON: {e}"))?;
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
    let mut ids = match &o.root_dir {
        Some(dir) => folder::index_ids(dir)?,
        None => HashMap::new(),
    };
    add_documents(&o.documents, &value, &mut ids)?;
    let resolver = Resolver { root_dir: o.root_dir.clone(), ids, url_map: o.url_map.clone() };
    let reached = fanout::check(&value, o.base_uri.as_deref().unwrap_or(""), &resolver)?;
    if o.strict {
        // The files "$ref" reaches are held to the same rules as the schema itself.
        let mut uris: Vec<&String> = reached.keys().collect();
        uris.sort();
        for uri in uris {
            let doc = &reached[uri].doc;
            let d = draft.detect(doc);
            let d = if d == Draft::Unknown { draft } else { d };
            let mut ref_targets = Vec::new();
            collect_ref_targets(doc, &mut ref_targets, 0);
            let mut w = Walk { draft: d, ref_targets: &ref_targets, problems: Vec::new() };
            // Only what a "$ref" names is a schema; the rest of a file may be a container.
            let mut targets = reached[uri].targets.clone();
            targets.sort();
            targets.dedup();
            for t in &targets {
                if let Some(sub) = doc.pointer(t) {
                    check_keywords(&mut w, sub, t, 0);
                }
            }
            if !w.problems.is_empty() {
                return Err(format!("{}: {}", percent_decode(uri), w.problems.join("; ")));
            }
        }
    }
    let build = |linear: bool, resolver: Resolver| {
        let mut builder = jsonschema::options()
            .with_draft(draft)
            .should_validate_formats(o.assert_formats)
            .should_ignore_unknown_formats(false)
            .with_retriever(resolver);
        builder = if linear {
            builder.with_pattern_options(PatternOptions::regex())
        } else {
            builder.with_pattern_options(
                PatternOptions::fancy_regex().backtrack_limit(o.backtrack_limit),
            )
        };
        if matches!(draft, Draft::Draft4 | Draft::Draft6 | Draft::Draft7) {
            // "uuid" became a format in 2019-09, but draft-07 schemas in the wild (Confluent
            // Schema Registry's among them) use it; enforce it rather than refuse it.
            builder = builder.with_format("uuid", is_uuid);
        }
        if let Some(base) = &o.base_uri {
            builder = builder.with_base_uri(base.clone());
        }
        builder.build(&value)
    };
    let place = |e: &ValidationError| {
        let at = e.schema_path().as_str().to_string();
        if at.is_empty() { e.to_string() } else { format!("#{at}: {e}") }
    };
    let fresh_resolver = || Resolver {
        root_dir: resolver.root_dir.clone(),
        ids: resolver.ids.clone(),
        url_map: resolver.url_map.clone(),
    };
    // The linear engine whenever it can run every pattern, even where backtracking is allowed.
    let linear = build(true, fresh_resolver());
    if let (Err(_), true) = (&linear, o.backtracking_patterns) {
        let validator = build(false, fresh_resolver()).map_err(|e| place(&e))?;
        return Ok(Schema {
            validator,
            draft,
            max_backtracking_string: Some(o.backtracking_max_string_bytes),
        });
    }
    let validator = match linear {
        Ok(v) => v,
        Err(e) if build(false, fresh_resolver()).is_ok() => {
            // Only the linear engine refuses it: a lookaround or backreference.
            let at = e.schema_path().as_str().to_string();
            return Err(format!(
                "#{at}: {}: the pattern needs a backtracking regex engine (a lookaround or a \
                 backreference), whose matching time can grow without bound on long strings; \
                 rewrite it without, or set schema_patterns: backtracking on the topic to run \
                 it under a budget ({} backtracking steps per match, strings of at most {} bytes)",
                e,
                o.backtrack_limit,
                o.backtracking_max_string_bytes
            ));
        }
        Err(e) => return Err(place(&e)),
    };
    Ok(Schema { validator, draft, max_backtracking_string: None })
}

/// The schemas given by name (a registry's references) join the ones "$ref" may name: by
/// the name itself, and by the name resolved against the root's "$id" and the default base.
fn add_documents(
    documents: &[(String, String)],
    root: &Value,
    ids: &mut HashMap<String, Value>,
) -> Result<(), String> {
    let root_id = root.get("$id").or_else(|| root.get("id")).and_then(Value::as_str);
    for (name, text) in documents {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| format!("the referenced schema {name} is not JSON: {e}"))?;
        let mut keys = vec![name.clone()];
        for base in root_id.iter().copied().chain(std::iter::once("json-schema:///")) {
            if let Ok(b) = jsonschema::uri::from_str(base) {
                if let Ok(u) = jsonschema::uri::resolve_against(&b.borrow(), name) {
                    keys.push(u.as_str().to_string());
                }
            }
        }
        for k in keys {
            ids.insert(k.trim_end_matches('#').to_string(), doc.clone());
        }
    }
    Ok(())
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

/// The bytes the C side passed (none for a null pointer).
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 { &[] } else { std::slice::from_raw_parts(p, len) }
}

/// Hands `b` to the C side, which frees it with cc_jq_bytes_free.
pub(crate) fn give(b: Vec<u8>, out: *mut *mut u8, out_len: *mut usize) {
    let b = b.into_boxed_slice();
    unsafe {
        *out_len = b.len();
        *out = Box::into_raw(b) as *mut u8;
    }
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

/// Whether the engine gave up on a match (the backtrack limit, or a recovered engine
/// panic): the verdict is undecided, which is neither valid nor invalid.
fn is_budget(kind: &ValidationErrorKind) -> bool {
    matches!(
        kind,
        ValidationErrorKind::BacktrackLimitExceeded { .. }
            | ValidationErrorKind::RegexEngineFailure { .. }
    )
}

/// The first string (value or property name) longer than `max`, by JSON Pointer.
fn long_string(v: &Value, max: usize, at: &mut String) -> Option<(String, usize)> {
    match v {
        Value::String(s) if s.len() > max => Some((at.clone(), s.len())),
        Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| {
            let len = at.len();
            let _ = write!(at, "/{i}");
            let found = long_string(x, max, at);
            at.truncate(len);
            found
        }),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            let len = at.len();
            let _ = write!(at, "/{}", k.replace('~', "~0").replace('/', "~1"));
            let found = if k.len() > max { Some((at.clone(), k.len())) } else { long_string(x, max, at) };
            at.truncate(len);
            found
        }),
        _ => None,
    }
}

/// Where `v` is over a backtracking schema's string budget, and why.
fn over_string_budget(s: &Schema, v: &Value) -> Option<(String, String)> {
    let max = s.max_backtracking_string?;
    let (at, len) = long_string(v, max, &mut String::new())?;
    Some((
        at,
        format!(
            "a string of {len} bytes is longer than the {max} bytes this topic's backtracking \
             patterns may be run on"
        ),
    ))
}

/// 0: valid; 1: not valid; 2: not JSON; 3: internal error; 4: the budget was exceeded.
#[no_mangle]
pub unsafe extern "C" fn ccjs_check(schema: *const Schema, doc: *const u8, len: usize) -> i32 {
    let doc = bytes(doc, len);
    let s = &*schema;
    catch_unwind(AssertUnwindSafe(|| match json::parse(doc) {
        Err(_) => 2,
        Ok(v) => {
            if over_string_budget(s, &v).is_some() {
                return 4;
            }
            if s.validator.is_valid(&v) {
                return 0;
            }
            if s.max_backtracking_string.is_none() {
                return 1;  // the linear engine always decides: no need to ask why
            }
            match s.validator.validate(&v) {
                Ok(()) => 0,
                Err(e) if is_budget(e.kind()) => 4,
                Err(_) => 1,
            }
        }
    }))
    .unwrap_or(3)
}

/// 0: `doc` is JSON (the one parser's rules, see json.rs); 2: it is not, and *error says
/// why (free it with ccjs_string_free).
#[no_mangle]
pub unsafe extern "C" fn ccjs_json_check(doc: *const u8, len: usize, error: *mut *mut c_char) -> i32 {
    let doc = bytes(doc, len);
    let result = catch_unwind(AssertUnwindSafe(|| json::parse(doc).map(|_| ())))
        .unwrap_or_else(|_| Err("internal error in the JSON parser".into()));
    match result {
        Ok(()) => 0,
        Err(e) => {
            if !error.is_null() {
                *error = to_c_string(e);
            }
            2
        }
    }
}

/// The document value a message quotes: its JSON text, at most MAX_QUOTE_BYTES of it.
fn quote(v: &Value) -> String {
    let text = v.to_string();
    if text.len() <= MAX_QUOTE_BYTES {
        return text;
    }
    format!("{} ({} bytes)", json::truncate(&text, MAX_QUOTE_BYTES), text.len())
}

/// Every violation of `doc`, up to `max_errors`, as a JSON document:
///   {"errors": [{"pointer": "/a/0", "keyword": "type", "message": "..."}]}
/// or {"json_error": "..."} when doc is not JSON, or {"budget": "..."} when the engine gave
/// up on a match the verdict depends on. Messages quote at most MAX_QUOTE_BYTES of a value
/// and are at most MAX_MESSAGE_BYTES; with mask_values they quote none (for logs). Free the
/// result with ccjs_string_free.
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
        let v: Value = match json::parse(doc) {
            Ok(v) => v,
            Err(e) => return serde_json::json!({ "json_error": e }).to_string(),
        };
        if let Some((at, why)) = over_string_budget(s, &v) {
            return serde_json::json!({ "budget": why, "pointer": at }).to_string();
        }
        let mut errors = Vec::new();
        for e in s.validator.iter_errors(&v) {
            if is_budget(e.kind()) {
                let message = format!(
                    "at {}: the pattern could not be decided within its budget: {e}",
                    if e.instance_path().as_str().is_empty() { "(root)" } else { e.instance_path().as_str() }
                );
                let message = if mask_values != 0 {
                    format!("{}", e.masked())
                } else {
                    message
                };
                return serde_json::json!({
                    "budget": json::truncate(&message, MAX_MESSAGE_BYTES - 3),
                    "pointer": e.instance_path().as_str(),
                })
                .to_string();
            }
            if errors.len() >= max_errors.max(1) {
                continue;  // still looking for an undecided match
            }
            let mut message = String::new();
            if mask_values != 0 {
                let _ = write!(message, "{}", e.masked());
            } else {
                let _ = write!(message, "{}", e.masked_with(quote(e.instance())));
            }
            errors.push(serde_json::json!({
                "pointer": e.instance_path().as_str(),
                "keyword": e.kind().keyword(),
                "message": json::truncate(&message, MAX_MESSAGE_BYTES - 3),
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
