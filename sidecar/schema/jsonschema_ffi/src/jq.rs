//! jq filters for per-topic transforms (sidecar/transform/): a C ABI over the `jaq`
//! crates. A filter is compiled once and run on one record at a time; the record's value
//! is `.`, its metadata the variables `$key`, `$partition`, `$offset`, `$timestamp` and
//! `$headers`.
//!
//! What a filter can reach is limited to the record: modules cannot be loaded, `env` is
//! an empty object, `halt` is an error, `debug`/`stderr` print nothing, `input`/`inputs`
//! do not exist. A filter that never ends, recurses without bound or allocates without
//! bound is not stopped here: cachecar runs filters in a worker process it can kill
//! (transform/sandbox.h).

use std::fmt::{self, Write as _};
use std::panic::{catch_unwind, AssertUnwindSafe};

use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::{bome, v, Fun};
use jaq_core::{data, Compiler, Ctx, Vars};
use jaq_json::Val;

use crate::{bytes, give};

type D = data::JustLut<Val>;

pub struct Jq {
    filter: jaq_core::Filter<D>,
    /// Set when the filter only builds an object from paths of its input.
    projection: Option<Projection>,
}

/// A filter of the form `{a, b: .c.d, "e f": .g}`: an object whose members are paths of
/// the input. Run without the interpreter when every path meets objects or null (jaq runs
/// the record otherwise, so errors are jaq's own). Member values are copied as the input
/// wrote them (jaq would print the same JSON with its own spacing and escapes).
struct Projection {
    members: Vec<(String, Vec<String>)>,
}

const KEYWORDS: &[&str] = &["def", "if", "then", "elif", "else", "end", "as", "reduce",
    "foreach", "try", "catch", "label", "import", "include", "and", "or", "not", "__loc__"];

/// Recognizes a projection in the filter's text; None for anything else.
fn parse_projection(code: &str) -> Option<Projection> {
    let b = code.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && (b[*i] as char).is_ascii_whitespace() {
            *i += 1;
        }
    };
    let ident = |i: &mut usize| -> Option<String> {
        let start = *i;
        if *i < b.len() && (b[*i].is_ascii_alphabetic() || b[*i] == b'_') {
            *i += 1;
            while *i < b.len() && (b[*i].is_ascii_alphanumeric() || b[*i] == b'_') {
                *i += 1;
            }
            let name = &code[start..*i];
            if !KEYWORDS.contains(&name) {
                return Some(name.to_string());
            }
        }
        None
    };
    // A string key without escapes or interpolation.
    let string = |i: &mut usize| -> Option<String> {
        if *i >= b.len() || b[*i] != b'"' {
            return None;
        }
        let start = *i + 1;
        let mut j = start;
        while j < b.len() && b[j] != b'"' {
            if b[j] == b'\\' || b[j] < 0x20 {
                return None;
            }
            j += 1;
        }
        if j >= b.len() {
            return None;
        }
        *i = j + 1;
        Some(code[start..j].to_string())
    };
    ws(&mut i);
    if i >= b.len() || b[i] != b'{' {
        return None;
    }
    i += 1;
    let mut members: Vec<(String, Vec<String>)> = Vec::new();
    loop {
        ws(&mut i);
        let (key, shorthand) = match ident(&mut i) {
            Some(k) => (k, true),
            None => (string(&mut i)?, false),
        };
        ws(&mut i);
        let path = if i < b.len() && b[i] == b':' {
            i += 1;
            ws(&mut i);
            let mut path = Vec::new();
            while i < b.len() && b[i] == b'.' {
                i += 1;
                path.push(ident(&mut i)?);
            }
            if path.is_empty() {
                return None;
            }
            ws(&mut i);
            path
        } else if shorthand {
            vec![key.clone()]
        } else {
            return None;
        };
        if members.iter().any(|(k, _)| *k == key) {
            return None;  // a repeated key: leave it to jaq
        }
        members.push((key, path));
        if i < b.len() && b[i] == b',' {
            i += 1;
            continue;
        }
        break;
    }
    if i >= b.len() || b[i] != b'}' {
        return None;
    }
    i += 1;
    ws(&mut i);
    if i != b.len() {
        return None;
    }
    Some(Projection { members })
}

type RawMap<'v> =
    std::collections::HashMap<std::borrow::Cow<'v, str>, &'v serde_json::value::RawValue>;

/// An object's members (Some(None) for null); None for anything else.
fn members_of(v: &serde_json::value::RawValue) -> Option<Option<RawMap<'_>>> {
    let text = v.get();
    if text == "null" {
        return Some(None);
    }
    if !text.starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok().map(Some)
}

/// The member at `path` below `root`'s members: Some(None) for null (a missing member,
/// or a path through null); None when a step meets something that is not an object or
/// null.
fn project_path<'v>(root: &Option<RawMap<'v>>, path: &[String])
    -> Option<Option<&'v serde_json::value::RawValue>> {
    let mut here: Option<&'v serde_json::value::RawValue> = match root {
        None => return Some(None),
        Some(m) => match m.get(path[0].as_str()) {
            None => return Some(None),
            Some(v) => Some(*v),
        },
    };
    for step in &path[1..] {
        let v = here.expect("set above");
        match members_of(v)? {
            None => return Some(None),
            Some(m) => match m.get(step.as_str()) {
                None => return Some(None),
                Some(x) => here = Some(*x),
            },
        }
    }
    let v = here.expect("set above");
    Some(if v.get() == "null" { None } else { Some(v) })
}

impl Projection {
    /// The projected object's JSON, or None to run the record through jaq.
    fn run(&self, value: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(value).ok()?;
        let raw: &serde_json::value::RawValue = serde_json::from_str(text).ok()?;
        let root = members_of(raw)?;
        let mut out = String::with_capacity(value.len());
        out.push('{');
        for (n, (key, path)) in self.members.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(key).ok()?);
            out.push(':');
            match project_path(&root, path)? {
                Some(v) => out.push_str(v.get()),
                None => out.push_str("null"),
            }
        }
        out.push('}');
        Some(out)
    }
}

const VARS: [&str; 5] = ["$key", "$partition", "$offset", "$timestamp", "$headers"];

fn funs() -> impl Iterator<Item = Fun<D>> {
    let hidden = ["env", "halt", "debug_empty", "stderr_empty"];
    let allowed = jaq_core::funs::<D>()
        .chain(jaq_std::funs::<D>())
        .chain(jaq_json::funs::<D>())
        .filter(move |(name, _, _)| !hidden.contains(name));
    let replaced: [Fun<D>; 4] = [
        ("env", v(0), jaq_core::Native::new(|_| bome(Ok(Val::obj(Default::default()))))),
        ("halt", v(1), jaq_core::Native::new(|_| {
            bome(Err(jaq_core::Error::str("halt is not available in a transform")))
        })),
        ("debug_empty", v(0), jaq_core::Native::new(|_| Box::new(std::iter::empty()))),
        ("stderr_empty", v(0), jaq_core::Native::new(|_| Box::new(std::iter::empty()))),
    ];
    allowed.chain(replaced)
}

fn compile(code: &str) -> Result<Jq, String> {
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File { code, path: () };
    let modules = loader.load(&arena, program).map_err(|errs| {
        let mut msg = String::new();
        for (file, e) in errs {
            let _ = write!(msg, "{}", load_error(file.code, &e));
        }
        msg
    })?;
    let filter = Compiler::default()
        .with_funs(funs())
        .with_global_vars(VARS)
        .compile(modules)
        .map_err(|errs| {
            let mut parts = Vec::new();
            for (_file, es) in errs {
                for (name, undefined) in es {
                    parts.push(format!("undefined {} {}", undefined.as_str(), name));
                }
            }
            parts.join("; ")
        })?;
    Ok(Jq { filter, projection: parse_projection(code) })
}

fn load_error(code: &str, e: &jaq_core::load::Error<&str>) -> String {
    use jaq_core::load::Error;
    // Each error holds a slice of `code`; its offset gives the place.
    let place = |s: &str| {
        let off = (s.as_ptr() as usize).saturating_sub(code.as_ptr() as usize).min(code.len());
        let line = code[..off].matches('\n').count() + 1;
        let col = off - code[..off].rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("line {line}, column {col}")
    };
    match e {
        Error::Io(errs) => errs.iter().map(|(p, m)| format!("cannot load {p}: {m}")).collect::<Vec<_>>().join("; "),
        Error::Lex(errs) => errs
            .iter()
            .map(|(expect, at)| format!("{}: expected {}", place(at), expect.as_str()))
            .collect::<Vec<_>>()
            .join("; "),
        Error::Parse(errs) => errs
            .iter()
            .map(|(expect, at)| {
                let found = if at.is_empty() { "end of filter".to_string() } else { format!("{:?}", at.chars().take(16).collect::<String>()) };
                format!("{}: expected {}, found {}", place(at), expect.as_str(), found)
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Writes up to `limit` bytes; past it, fails (so a huge output is never built whole).
struct Limited {
    buf: String,
    limit: usize,
    over: bool,
}

impl fmt::Write for Limited {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.buf.len() + s.len() > self.limit {
            self.over = true;
            return Err(fmt::Error);
        }
        self.buf.push_str(s);
        Ok(())
    }
}

/// Outcomes of cc_jq_run.
pub const CC_JQ_VALUE: i32 = 0; // *out: the value's JSON ("null": delete the key)
pub const CC_JQ_EMPTY: i32 = 1; // no output: skip the record
pub const CC_JQ_ERROR: i32 = 2; // *out: the error
pub const CC_JQ_NOT_JSON: i32 = 3; // *out: why the value is not JSON
pub const CC_JQ_TOO_LARGE: i32 = 4; // the output is over max_output bytes
pub const CC_JQ_MANY: i32 = 5; // more than one output

struct Record<'r> {
    value: &'r [u8],
    key: &'r [u8],
    partition: i32,
    offset: i64,
    timestamp_ms: i64,
    headers: &'r [u8],
}

fn run(jq: &Jq, r: &Record, max_output: usize) -> (i32, String) {
    if let Some(out) = jq.projection.as_ref().and_then(|p| p.run(r.value)) {
        if out.len() > max_output {
            return (CC_JQ_TOO_LARGE, format!("the transform's value is over {max_output} bytes"));
        }
        return (CC_JQ_VALUE, out);
    }
    let input = match jaq_json::read::parse_single(r.value) {
        Ok(v) => v,
        Err(e) => return (CC_JQ_NOT_JSON, format!("the value is not JSON: {e}")),
    };
    let headers = if r.headers.is_empty() {
        Val::obj(Default::default())
    } else {
        match jaq_json::read::parse_single(r.headers) {
            Ok(v) => v,
            Err(e) => return (CC_JQ_ERROR, format!("headers: {e}")),
        }
    };
    let vars = Vars::new([
        Val::utf8_str(r.key.to_vec()),
        Val::from(r.partition as isize),
        Val::from(r.offset as isize),
        Val::from(r.timestamp_ms as isize),
        headers,
    ]);
    let ctx = Ctx::<D>::new(&jq.filter.lut, vars);
    let mut out = jq.filter.id.run((ctx, input));
    let first = match out.next() {
        None => return (CC_JQ_EMPTY, String::new()),
        Some(Ok(v)) => v,
        Some(Err(e)) => return (CC_JQ_ERROR, exn_message(e)),
    };
    match out.next() {
        None => {}
        Some(Err(e)) => return (CC_JQ_ERROR, exn_message(e)),
        Some(Ok(_)) => {
            return (CC_JQ_MANY, "the transform gave more than one value (a transform gives one \
                                 value, null to delete, or empty to skip)".into())
        }
    }
    if let Err(why) = json_ok(&first, 0) {
        return (CC_JQ_ERROR, format!("the transform's value is not JSON: {why}"));
    }
    let mut w = Limited { buf: String::new(), limit: max_output, over: false };
    if write!(w, "{first}").is_err() || w.over {
        return (CC_JQ_TOO_LARGE, format!("the transform's value is over {max_output} bytes"));
    }
    (CC_JQ_VALUE, w.buf)
}

/// Levels of nesting a stored value may have: cachecar's one JSON parser refuses deeper
/// documents (schema/json_schema.h kMaxJsonDepth).
const MAX_DEPTH: usize = 100;

/// Whether `v` prints as JSON that cachecar's parser accepts: jaq values may also be NaN
/// or infinite numbers, byte strings, text that is not UTF-8, or objects with keys that
/// are not strings, which it prints in ways JSON has no place for.
fn json_ok(v: &Val, depth: usize) -> Result<(), &'static str> {
    use jaq_json::Num;
    match v {
        Val::Null | Val::Bool(_) => Ok(()),
        Val::Num(Num::Float(f)) if !f.is_finite() => Err("a number that is NaN or infinite"),
        Val::Num(_) => Ok(()),
        Val::BStr(_) => Err("a byte string"),
        Val::TStr(b) => std::str::from_utf8(b).map(|_| ()).map_err(|_| "text that is not UTF-8"),
        Val::Arr(a) => {
            if depth >= MAX_DEPTH {
                return Err("more than 100 levels of nesting");
            }
            a.iter().try_for_each(|x| json_ok(x, depth + 1))
        }
        Val::Obj(o) => {
            if depth >= MAX_DEPTH {
                return Err("more than 100 levels of nesting");
            }
            o.iter().try_for_each(|(k, x)| match k {
                Val::TStr(b) if std::str::from_utf8(b).is_ok() => json_ok(x, depth + 1),
                _ => Err("an object key that is not a string"),
            })
        }
    }
}

fn exn_message(e: jaq_core::Exn<Val>) -> String {
    match e.get_err() {
        Ok(err) => {
            let mut s = Limited { buf: String::new(), limit: 512, over: false };
            let _ = write!(s, "{err}");
            if s.over {
                s.buf.push('…');
            }
            s.buf
        }
        Err(_) => "the transform stopped (halt or break)".into(),
    }
}


/// Compiles a filter. On failure returns null and sets *error (free with cc_jq_bytes_free).
#[no_mangle]
pub unsafe extern "C" fn cc_jq_compile(
    code: *const u8,
    code_len: usize,
    error: *mut *mut u8,
    error_len: *mut usize,
) -> *mut Jq {
    let code = bytes(code, code_len);
    let result = catch_unwind(AssertUnwindSafe(|| match std::str::from_utf8(code) {
        Ok(code) => compile(code),
        Err(_) => Err("the filter is not UTF-8".into()),
    }))
    .unwrap_or_else(|_| Err("internal error in the jq compiler".into()));
    match result {
        Ok(jq) => Box::into_raw(Box::new(jq)),
        Err(e) => {
            give(e.into_bytes(), error, error_len);
            std::ptr::null_mut()
        }
    }
}

/// 1 when the filter runs without the interpreter where it can (a projection).
#[no_mangle]
pub unsafe extern "C" fn cc_jq_is_projection(jq: *const Jq) -> i32 {
    i32::from(!jq.is_null() && (*jq).projection.is_some())
}

#[no_mangle]
pub unsafe extern "C" fn cc_jq_free(jq: *mut Jq) {
    if !jq.is_null() {
        drop(Box::from_raw(jq));
    }
}

#[no_mangle]
pub unsafe extern "C" fn cc_jq_bytes_free(p: *mut u8, len: usize) {
    if !p.is_null() {
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, len)));
    }
}

/// Runs `jq` on one record; returns a CC_JQ_* outcome and sets *out (free with
/// cc_jq_bytes_free) to the value's JSON or the message. `headers` is a JSON object.
#[no_mangle]
pub unsafe extern "C" fn cc_jq_run(
    jq: *const Jq,
    value: *const u8,
    value_len: usize,
    key: *const u8,
    key_len: usize,
    partition: i32,
    offset: i64,
    timestamp_ms: i64,
    headers: *const u8,
    headers_len: usize,
    max_output: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> i32 {
    let r = Record {
        value: bytes(value, value_len),
        key: bytes(key, key_len),
        partition,
        offset,
        timestamp_ms,
        headers: bytes(headers, headers_len),
    };
    let (code, text) = catch_unwind(AssertUnwindSafe(|| run(&*jq, &r, max_output)))
        .unwrap_or_else(|_| (CC_JQ_ERROR, "internal error in the jq interpreter".into()));
    give(text.into_bytes(), out, out_len);
    code
}
