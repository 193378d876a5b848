//! Avro payloads of value_format: registry topics: a writer schema (the registry's) and a
//! datum in Avro's binary encoding become JSON in Avro's own JSON encoding (the Avro
//! specification's, as Java's JsonEncoder writes it):
//!
//! - a union is `null`, or an object with one member named by the branch's type
//!   (`{"string": "x"}`, `{"com.acme.User": {...}}`);
//! - bytes and fixed are strings of one code point per byte (U+0000 to U+00FF);
//! - logical types are their underlying type (a timestamp-millis is the long, a date the
//!   int, a decimal its bytes), except uuid (a string) and big-decimal (a decimal string);
//! - a float or double that JSON cannot hold is the string "NaN", "Infinity" or
//!   "-Infinity"; a map's keys are sorted.
//!
//! Bounded: allocations a datum asks for are capped (apache-avro's max_allocation_bytes),
//! and recursive schemas are refused, so a hostile datum cannot nest without bound (the
//! decoder recurses once per level).

use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use apache_avro::schema::{Name, Schema};

use crate::{bytes, give};
use apache_avro::types::Value;
use serde_json::Number;

pub struct Avro {
    schema: Schema,
    /// The named types it refers to (the registry's schema references).
    schemata: Vec<Schema>,
    names: HashMap<Name, Schema>,
}

pub const CC_AVRO_OK: i32 = 0;
pub const CC_AVRO_INVALID: i32 = 1;
pub const CC_AVRO_TOO_LARGE: i32 = 2;

/// The most bytes one datum may make the decoder allocate.
const MAX_ALLOCATION_BYTES: usize = 64 << 20;

fn collect_names(s: &Schema, names: &mut HashMap<Name, Schema>) {
    match s {
        Schema::Record(r) => {
            names.insert(r.name.clone(), s.clone());
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.clone(), s.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.clone(), s.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_names(v, names)),
        Schema::Decimal(d) => collect_names(&d.inner, names),
        _ => {}
    }
}

/// Whether a record refers to itself, directly or through others.
fn recursive(s: &Schema, names: &HashMap<Name, Schema>, open: &mut HashSet<Name>) -> bool {
    match s {
        Schema::Ref { name } => {
            if open.contains(name) {
                return true;
            }
            match names.get(name) {
                Some(def) => {
                    let def = def.clone();
                    recursive(&def, names, open)
                }
                None => false,
            }
        }
        Schema::Record(r) => {
            if !open.insert(r.name.clone()) {
                return true;
            }
            let found = r.fields.iter().any(|f| recursive(&f.schema, names, open));
            open.remove(&r.name);
            found
        }
        Schema::Array(a) => recursive(&a.items, names, open),
        Schema::Map(m) => recursive(&m.types, names, open),
        Schema::Union(u) => u.variants().iter().any(|v| recursive(v, names, open)),
        _ => false,
    }
}

fn compile(text: &str, references: &[String]) -> Result<Avro, String> {
    apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
    let (schema, schemata) = if references.is_empty() {
        (Schema::parse_str(text).map_err(|e| format!("not an Avro schema: {e}"))?, Vec::new())
    } else {
        Schema::parse_str_with_list(text, references)
            .map_err(|e| format!("not an Avro schema with the ones it refers to: {e}"))?
    };
    let mut names = HashMap::new();
    for s in &schemata {
        collect_names(s, &mut names);
    }
    collect_names(&schema, &mut names);
    if recursive(&schema, &names, &mut HashSet::new()) {
        return Err("a recursive Avro schema (a record that contains itself) is not supported: \
                    a hostile record could nest without bound"
            .into());
    }
    Ok(Avro { schema, schemata, names })
}

fn type_name(s: &Schema) -> String {
    match s {
        Schema::Null => "null".into(),
        Schema::Boolean => "boolean".into(),
        Schema::Int | Schema::Date | Schema::TimeMillis => "int".into(),
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "long".into(),
        Schema::Float => "float".into(),
        Schema::Double => "double".into(),
        Schema::Bytes | Schema::BigDecimal => "bytes".into(),
        Schema::String | Schema::Uuid => "string".into(),
        Schema::Decimal(d) => type_name(&d.inner),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Record(r) => r.name.fullname(None),
        Schema::Enum(e) => e.name.fullname(None),
        Schema::Fixed(f) => f.name.fullname(None),
        Schema::Duration => "fixed".into(),
        Schema::Ref { name } => name.fullname(None),
        Schema::Union(_) => "union".into(),
    }
}

fn write_str(t: &str, out: &mut String) {
    // serde_json's escaping (never fails for a str)
    out.push_str(&serde_json::to_string(t).unwrap_or_default());
}

fn write_bytes(b: &[u8], out: &mut String) {
    let s: String = b.iter().map(|&c| c as char).collect();
    write_str(&s, out);
}

fn write_float(f: f64, out: &mut String) {
    match Number::from_f64(f) {
        Some(n) => out.push_str(&n.to_string()),
        None if f.is_nan() => out.push_str("\"NaN\""),
        None if f > 0.0 => out.push_str("\"Infinity\""),
        None => out.push_str("\"-Infinity\""),
    }
}

impl Avro {
    fn resolve<'a>(&'a self, s: &'a Schema) -> &'a Schema {
        match s {
            Schema::Ref { name } => self.names.get(name).unwrap_or(s),
            _ => s,
        }
    }

    /// Appends `v` (of schema `s`) to `out` as JSON; record fields in schema order.
    fn write(&self, v: &Value, s: &Schema, out: &mut String) -> Result<(), String> {
        let s = self.resolve(s);
        match v {
            // apache-avro reads a string cut short by the end of the payload as null:
            // anywhere but a null schema, a null is a truncated payload.
            Value::Null if matches!(s, Schema::Null) => out.push_str("null"),
            Value::Null => return Err("the payload ends inside a value (truncated)".into()),
            Value::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => out.push_str(&i.to_string()),
            Value::Long(i)
            | Value::TimeMicros(i)
            | Value::TimestampMillis(i)
            | Value::TimestampMicros(i)
            | Value::TimestampNanos(i)
            | Value::LocalTimestampMillis(i)
            | Value::LocalTimestampMicros(i)
            | Value::LocalTimestampNanos(i) => out.push_str(&i.to_string()),
            Value::Float(f) => write_float(f64::from(*f), out),
            Value::Double(f) => write_float(*f, out),
            Value::Bytes(b) | Value::Fixed(_, b) => write_bytes(b, out),
            Value::String(t) | Value::Enum(_, t) => write_str(t, out),
            Value::Uuid(u) => write_str(&u.to_string(), out),
            Value::Decimal(d) => {
                let b: Vec<u8> = Vec::try_from(d).map_err(|e| format!("a decimal: {e}"))?;
                write_bytes(&b, out)
            }
            Value::BigDecimal(d) => write_str(&d.to_string(), out),
            Value::Duration(d) => write_bytes(&<[u8; 12]>::from(*d), out),
            Value::Union(i, inner) => {
                let Schema::Union(u) = s else { return Err("a union without its schema".into()) };
                let branch = u
                    .variants()
                    .get(*i as usize)
                    .ok_or_else(|| format!("union branch {i} is not in the schema"))?;
                let branch = self.resolve(branch);
                if matches!(branch, Schema::Null) {
                    out.push_str("null");
                } else {
                    out.push('{');
                    write_str(&type_name(branch), out);
                    out.push(':');
                    self.write(inner, branch, out)?;
                    out.push('}');
                }
            }
            Value::Array(items) => {
                let Schema::Array(a) = s else { return Err("an array without its schema".into()) };
                out.push('[');
                for (n, x) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    self.write(x, &a.items, out)?;
                }
                out.push(']');
            }
            Value::Map(entries) => {
                let Schema::Map(m) = s else { return Err("a map without its schema".into()) };
                let mut keys: Vec<&String> = entries.keys().collect();
                keys.sort();
                out.push('{');
                for (n, k) in keys.into_iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write_str(k, out);
                    out.push(':');
                    self.write(&entries[k], &m.types, out)?;
                }
                out.push('}');
            }
            Value::Record(fields) => {
                let Schema::Record(r) = s else { return Err("a record without its schema".into()) };
                out.push('{');
                for (n, ((name, value), field)) in fields.iter().zip(r.fields.iter()).enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write_str(name, out);
                    out.push(':');
                    self.write(value, &field.schema, out)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }

    fn decode(&self, datum: &[u8]) -> Result<String, String> {
        let mut reader = Cursor::new(datum);
        let value = apache_avro::from_avro_datum_schemata(
            &self.schema, self.schemata.iter().collect(), &mut reader, None)
            .map_err(|e| format!("the payload does not decode with its Avro schema: {e}"))?;
        if (reader.position() as usize) != datum.len() {
            return Err(format!(
                "the payload has {} bytes after the Avro datum",
                datum.len() - reader.position() as usize
            ));
        }
        let mut out = String::with_capacity(datum.len() * 2);
        self.write(&value, &self.schema, &mut out)?;
        Ok(out)
    }
}


/// Parses a writer schema. On failure returns null and sets *error (free with
/// cc_jq_bytes_free).
#[no_mangle]
pub unsafe extern "C" fn cc_avro_compile(
    text: *const u8,
    text_len: usize,
    references: *const u8,
    references_len: usize,
    error: *mut *mut u8,
    error_len: *mut usize,
) -> *mut Avro {
    let text = bytes(text, text_len);
    let references = bytes(references, references_len);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let refs: Vec<String> = if references.is_empty() {
            Vec::new()
        } else {
            serde_json::from_slice(references)
                .map_err(|e| format!("the referenced schemas are not a list of texts: {e}"))?
        };
        match std::str::from_utf8(text) {
            Ok(t) => compile(t, &refs),
            Err(_) => Err("the Avro schema is not UTF-8".into()),
        }
    }))
    .unwrap_or_else(|_| Err("internal error in the Avro schema parser".into()));
    match result {
        Ok(a) => Box::into_raw(Box::new(a)),
        Err(e) => {
            give(e.into_bytes(), error, error_len);
            std::ptr::null_mut()
        }
    }
}

#[no_mangle]
pub unsafe extern "C" fn cc_avro_free(avro: *mut Avro) {
    if !avro.is_null() {
        drop(Box::from_raw(avro));
    }
}

/// Decodes one datum; returns a CC_AVRO_* outcome and sets *out (free with
/// cc_jq_bytes_free) to its JSON or to what is wrong.
#[no_mangle]
pub unsafe extern "C" fn cc_avro_decode(
    avro: *const Avro,
    datum: *const u8,
    datum_len: usize,
    max_output: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> i32 {
    let datum = bytes(datum, datum_len);
    let (code, text) = catch_unwind(AssertUnwindSafe(|| match (*avro).decode(datum) {
        Ok(json) if json.len() > max_output => (
            CC_AVRO_TOO_LARGE,
            format!("the decoded value is {} bytes, over {max_output}", json.len()),
        ),
        Ok(json) => (CC_AVRO_OK, json),
        Err(e) => (CC_AVRO_INVALID, e),
    }))
    .unwrap_or_else(|_| (CC_AVRO_INVALID, "internal error in the Avro decoder".into()));
    give(text.into_bytes(), out, out_len);
    code
}

/// JSON in Avro's JSON encoding (as `write` makes it) -> a Value of schema `s`, or the
/// problems found, each "JSON Pointer\tmessage" (at most `MAX_PROBLEMS`).
const MAX_PROBLEMS: usize = 20;

fn escape_pointer(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

impl Avro {
    fn from_json(&self, j: &serde_json::Value, s: &Schema, at: &str,
                 problems: &mut Vec<String>) -> Option<Value> {
        use serde_json::Value as J;
        let s = self.resolve(s);
        let mut fail = |what: String| {
            if problems.len() < MAX_PROBLEMS {
                problems.push(format!("{at}\t{what}"));
            }
            None
        };
        let int = |j: &J| j.as_i64();
        match (s, j) {
            (Schema::Null, J::Null) => Some(Value::Null),
            (Schema::Boolean, J::Bool(b)) => Some(Value::Boolean(*b)),
            (Schema::Int | Schema::Date | Schema::TimeMillis, _) => match int(j) {
                Some(i) if i32::try_from(i).is_ok() => Some(match s {
                    Schema::Date => Value::Date(i as i32),
                    Schema::TimeMillis => Value::TimeMillis(i as i32),
                    _ => Value::Int(i as i32),
                }),
                _ => fail("expected an int (a 32-bit integer)".into()),
            },
            (Schema::Long | Schema::TimeMicros | Schema::TimestampMillis | Schema::TimestampMicros
             | Schema::TimestampNanos | Schema::LocalTimestampMillis | Schema::LocalTimestampMicros
             | Schema::LocalTimestampNanos, _) => match int(j) {
                Some(i) => Some(match s {
                    Schema::TimeMicros => Value::TimeMicros(i),
                    Schema::TimestampMillis => Value::TimestampMillis(i),
                    Schema::TimestampMicros => Value::TimestampMicros(i),
                    Schema::TimestampNanos => Value::TimestampNanos(i),
                    Schema::LocalTimestampMillis => Value::LocalTimestampMillis(i),
                    Schema::LocalTimestampMicros => Value::LocalTimestampMicros(i),
                    Schema::LocalTimestampNanos => Value::LocalTimestampNanos(i),
                    _ => Value::Long(i),
                }),
                None => fail("expected a long (a 64-bit integer)".into()),
            },
            (Schema::Float | Schema::Double, _) => {
                let f = match j {
                    J::Number(n) => n.as_f64(),
                    J::String(t) if t == "NaN" => Some(f64::NAN),
                    J::String(t) if t == "Infinity" => Some(f64::INFINITY),
                    J::String(t) if t == "-Infinity" => Some(f64::NEG_INFINITY),
                    _ => None,
                };
                match (f, s) {
                    (Some(f), Schema::Float) => Some(Value::Float(f as f32)),
                    (Some(f), _) => Some(Value::Double(f)),
                    (None, _) => fail("expected a number".into()),
                }
            }
            (Schema::String, J::String(t)) => Some(Value::String(t.clone())),
            (Schema::Bytes | Schema::Fixed(_), J::String(t)) => {
                if let Some(c) = t.chars().find(|&c| (c as u32) > 0xff) {
                    return fail(format!("bytes are one code point per byte (U+0000 to U+00FF), \
                                         not U+{:04X}", c as u32));
                }
                let b: Vec<u8> = t.chars().map(|c| c as u32 as u8).collect();
                match s {
                    Schema::Fixed(f) if f.size != b.len() => {
                        fail(format!("expected {} bytes, not {}", f.size, b.len()))
                    }
                    Schema::Fixed(f) => Some(Value::Fixed(f.size, b)),
                    _ => Some(Value::Bytes(b)),
                }
            }
            (Schema::Enum(e), J::String(t)) => match e.symbols.iter().position(|x| x == t) {
                Some(i) => Some(Value::Enum(i as u32, t.clone())),
                None => fail(format!("not a symbol of enum {}", e.name.fullname(None))),
            },
            (Schema::Array(a), J::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, x) in items.iter().enumerate() {
                    out.push(self.from_json(x, &a.items, &format!("{at}/{i}"), problems));
                }
                out.into_iter().collect::<Option<Vec<_>>>().map(Value::Array)
            }
            (Schema::Map(m), J::Object(o)) => {
                let mut out = HashMap::new();
                let mut ok = true;
                for (k, v) in o {
                    match self.from_json(v, &m.types, &format!("{at}/{}", escape_pointer(k)), problems) {
                        Some(v) => { out.insert(k.clone(), v); }
                        None => ok = false,
                    }
                }
                if ok { Some(Value::Map(out)) } else { None }
            }
            (Schema::Record(r), J::Object(o)) => {
                let mut fields = Vec::with_capacity(r.fields.len());
                let mut ok = true;
                for f in &r.fields {
                    let here = format!("{at}/{}", escape_pointer(&f.name));
                    match o.get(&f.name) {
                        Some(v) => match self.from_json(v, &f.schema, &here, problems) {
                            Some(v) => fields.push((f.name.clone(), v)),
                            None => ok = false,
                        },
                        None => {
                            if problems.len() < MAX_PROBLEMS {
                                problems.push(format!("{here}\trequired by the Avro schema"));
                            }
                            ok = false;
                        }
                    }
                }
                for k in o.keys() {
                    if !r.lookup.contains_key(k) && problems.len() < MAX_PROBLEMS {
                        problems.push(format!("{at}/{}\tnot a field of record {}",
                                              escape_pointer(k), r.name.fullname(None)));
                        ok = false;
                    }
                }
                if ok { Some(Value::Record(fields)) } else { None }
            }
            (Schema::Union(u), J::Null) => match u.variants().iter().position(|v| matches!(v, Schema::Null)) {
                Some(i) => Some(Value::Union(i as u32, Box::new(Value::Null))),
                None => fail("null is not a branch of this union".into()),
            },
            (Schema::Union(u), J::Object(o)) if o.len() == 1 => {
                let (name, inner) = o.iter().next().unwrap();
                match u.variants().iter().position(|v| type_name(self.resolve(v)) == *name) {
                    Some(i) => {
                        let branch = &u.variants()[i];
                        let v = self.from_json(inner, branch, &format!("{at}/{}", escape_pointer(name)), problems)?;
                        Some(Value::Union(i as u32, Box::new(v)))
                    }
                    None => fail(format!("\"{name}\" is not a branch of this union")),
                }
            }
            (Schema::Union(_), _) => fail("a union is null or an object naming its branch, \
                                           e.g. {\"string\": \"x\"}".into()),
            _ => fail(format!("expected {}", type_name(s))),
        }
    }

    fn encode(&self, json: &[u8]) -> Result<Vec<u8>, String> {
        let j: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| format!("\tnot a JSON document: {e}"))?;
        let mut problems = Vec::new();
        let value = self.from_json(&j, &self.schema, "", &mut problems);
        match value {
            Some(v) if problems.is_empty() => {
                apache_avro::to_avro_datum_schemata(&self.schema, self.schemata.iter().collect(), v)
                    .map_err(|e| format!("\tdoes not encode with the Avro schema: {e}"))
            }
            _ => Err(problems.join("\n")),
        }
    }
}

/// Encodes a JSON document (Avro's JSON encoding) with the schema; returns CC_AVRO_OK and
/// sets *out to the datum, or CC_AVRO_INVALID and sets *out to the problems, one a line,
/// each "JSON Pointer<TAB>message". Free *out with cc_jq_bytes_free.
#[no_mangle]
pub unsafe extern "C" fn cc_avro_encode(
    avro: *const Avro,
    json: *const u8,
    json_len: usize,
    out: *mut *mut u8,
    out_len: *mut usize,
) -> i32 {
    let json = bytes(json, json_len);
    let (code, data) = catch_unwind(AssertUnwindSafe(|| match (*avro).encode(json) {
        Ok(d) => (CC_AVRO_OK, d),
        Err(e) => (CC_AVRO_INVALID, e.into_bytes()),
    }))
    .unwrap_or_else(|_| (CC_AVRO_INVALID, b"\tinternal error in the Avro encoder".to_vec()));
    give(data, out, out_len);
    code
}
