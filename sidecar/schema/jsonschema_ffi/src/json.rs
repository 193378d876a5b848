//! The one JSON parser of cachecar: documents on every path (Put, a consumed record, with or
//! without a schema) and schema files are parsed here, so whether a value is JSON never
//! depends on where it is looked at.
//!
//! On top of RFC 8259: at most MAX_DEPTH levels of nesting, at most MAX_BYTES bytes, no
//! duplicate object keys (the app and the validator could see different values), no byte
//! order mark. Numbers keep their exact text (serde_json's arbitrary_precision), so
//! 2^64+1 stays above 2^64 and 1e-400 above 0.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Levels of arrays and objects; `[[1]]` is 2.
pub const MAX_DEPTH: usize = 100;
/// The largest document parsed (the largest topics[].max_value_bytes allowed).
pub const MAX_BYTES: usize = 64 << 20;

/// serde_json hands an exact number to a visitor as a one-entry map under this key.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    if bytes.len() > MAX_BYTES {
        return Err(format!("{} bytes, more than the {} a document may have", bytes.len(), MAX_BYTES));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict { depth: 0 }.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(v)
}

struct Strict {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor { depth: self.depth })
    }
}

struct StrictVisitor {
    depth: usize,
}

impl StrictVisitor {
    fn nest<E: de::Error>(&self) -> Result<Strict, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(Strict { depth: self.depth + 1 })
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let nested = self.nest()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict { depth: nested.depth })? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let Some(first) = map.next_key::<String>()? else {
            self.nest::<A::Error>()?;
            return Ok(Value::Object(out));
        };
        if first == NUMBER_TOKEN {
            // serde_json's own lexer produced the text, so it is a valid JSON number; kept
            // as text (arbitrary_precision), exactly what serde_json's Value would hold.
            let text: String = map.next_value()?;
            return Ok(Value::Number(serde_json::Number::from_string_unchecked(text)));
        }
        let nested = self.nest()?;
        let mut key = Some(first);
        while let Some(k) = key {
            let v = map.next_value_seed(Strict { depth: nested.depth })?;
            match out.entry(k) {
                serde_json::map::Entry::Vacant(e) => {
                    e.insert(v);
                }
                serde_json::map::Entry::Occupied(e) => {
                    return Err(de::Error::custom(format!(
                        "duplicate key {:?} (an object may name a key once)",
                        truncate(e.key(), 64)
                    )));
                }
            }
            key = map.next_key::<String>()?;
        }
        Ok(Value::Object(out))
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, with "…" when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(parse(b"{\"a\":1,\"a\":1}").is_err());
        assert!(parse(b"\xEF\xBB\xBF{}").is_err());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).is_err());
        assert_eq!(parse(b"18446744073709551617").unwrap().to_string(), "18446744073709551617");
    }
}
