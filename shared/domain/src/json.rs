//! A small reader over `serde_json` objects that records type errors and unknown fields
//! instead of stopping at the first, so every problem in a body is reported together.

use serde_json::{Map, Value};

use crate::errors::{Errors, FieldCode, path};

pub struct ObjectReader<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    known: Vec<&'static str>,
}

impl<'a> ObjectReader<'a> {
    /// `None` (with an error recorded) when `value` is not an object.
    pub fn new(value: &'a Value, prefix: &str, errors: &mut Errors) -> Option<Self> {
        match value {
            Value::Object(map) => Some(ObjectReader { map, prefix: prefix.to_string(), known: Vec::new() }),
            _ => {
                let field = if prefix.is_empty() { "body".to_string() } else { prefix.to_string() };
                errors.add(field, FieldCode::InvalidType, "must be a JSON object");
                None
            }
        }
    }

    pub fn field_path(&self, key: &str) -> String {
        path(&self.prefix, key)
    }

    /// The raw value of `key`; JSON `null` counts as absent.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn required(&mut self, key: &'static str, errors: &mut Errors) -> Option<&'a Value> {
        let v = self.get(key);
        if v.is_none() {
            errors.add(self.field_path(key), FieldCode::Required, "is required");
        }
        v
    }

    pub fn str(&mut self, key: &'static str, errors: &mut Errors) -> Option<&'a str> {
        let p = self.field_path(key);
        match self.get(key)? {
            Value::String(s) => Some(s.as_str()),
            _ => {
                errors.add(p, FieldCode::InvalidType, "must be a string");
                None
            }
        }
    }

    pub fn required_str(&mut self, key: &'static str, errors: &mut Errors) -> Option<&'a str> {
        let p = self.field_path(key);
        match self.required(key, errors)? {
            Value::String(s) => Some(s.as_str()),
            _ => {
                errors.add(p, FieldCode::InvalidType, "must be a string");
                None
            }
        }
    }

    /// An integer field. Fractions, exponents that are not whole and out-of-range numbers
    /// are type errors: money never passes through floating point.
    pub fn int(&mut self, key: &'static str, errors: &mut Errors) -> Option<i64> {
        let p = self.field_path(key);
        let v = self.get(key)?;
        as_int(v).or_else(|| {
            errors.add(p, FieldCode::InvalidType, "must be an integer");
            None
        })
    }

    pub fn bool(&mut self, key: &'static str, errors: &mut Errors) -> Option<bool> {
        let p = self.field_path(key);
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            _ => {
                errors.add(p, FieldCode::InvalidType, "must be a boolean");
                None
            }
        }
    }

    pub fn array(&mut self, key: &'static str, errors: &mut Errors) -> Option<&'a Vec<Value>> {
        let p = self.field_path(key);
        match self.get(key)? {
            Value::Array(a) => Some(a),
            _ => {
                errors.add(p, FieldCode::InvalidType, "must be an array");
                None
            }
        }
    }

    /// Records every key that no accessor asked for. Call after all fields were read.
    pub fn finish(self, errors: &mut Errors) {
        for key in self.map.keys() {
            if !self.known.iter().any(|k| k == key) {
                errors.add(path(&self.prefix, key), FieldCode::UnknownField, "is not a recognised field");
            }
        }
    }
}

pub fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Parses a JSON document, refusing an object that names a key twice: `serde_json` keeps the
/// last, so `{"amount":1050,"amount":2000}` would silently charge 2000, and another parser
/// in front of us (a WAF, a log pipeline) may keep the first.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

struct StrictValue;

impl<'de> serde::de::DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StrictValue {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(serde::de::Error::custom(format!("duplicate key {shown:?}")));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Top-level fields whose text is multi-line by nature (a PEM public key): line breaks
/// are allowed there, every other control character still is not.
const MULTILINE_FIELDS: [&str; 1] = ["public_key"];

/// Every string (and object key) holding a control character (NUL, escapes, DEL, C1): such
/// text breaks logs, CSV exports and terminals downstream, and no field of ours needs it
/// (bar line breaks in [`MULTILINE_FIELDS`]).
pub fn control_characters(value: &Value, at: &str, errors: &mut Errors) {
    let multiline = MULTILINE_FIELDS.contains(&at);
    let bad = |s: &str| s.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r')));
    match value {
        Value::String(s) if bad(s) => {
            let field = if at.is_empty() { "body".to_string() } else { at.to_string() };
            errors.add(field, FieldCode::InvalidValue, "must not contain control characters");
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| control_characters(v, &crate::errors::index(at, i), errors)),
        Value::Object(map) => {
            for (k, v) in map {
                let shown: String = k.chars().filter(|c| !c.is_control()).take(64).collect();
                if k.chars().any(char::is_control) {
                    errors.add(path(at, &shown), FieldCode::InvalidValue, "field names must not contain control characters");
                } else {
                    control_characters(v, &path(at, k), errors);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod strict_tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(parse_strict(br#"{"amount":1050,"amount":2000}"#).unwrap_err().to_string().contains("duplicate key \"amount\""));
        assert!(parse_strict(br#"{"customer":{"email":"a@b.c","email":"x@y.z"}}"#).is_err());
        assert!(parse_strict(br#"[{"a":1},{"a":2}]"#).is_ok(), "the same key in two objects is fine");
        let v = parse_strict(br#"{"a":[1,-2,3.5,"x",null,true],"b":{}}"#).unwrap();
        assert_eq!(v, serde_json::json!({"a": [1, -2, 3.5, "x", null, true], "b": {}}));
        assert!(parse_strict(b"{} {}").is_err(), "trailing data");
        assert!(parse_strict(&[b'['; 200]).is_err(), "the recursion limit still holds");
    }

    #[test]
    fn control_characters_are_found_with_their_path() {
        let mut e = Errors::new();
        let v = serde_json::json!({"reference": "a\u{0}b", "metadata": {"k": "v\u{1b}[31m"}, "items": [{"name": "ok"}, {"name": "tab\there"}], "fine": "Grüße ✓"});
        control_characters(&v, "", &mut e);
        let fields: Vec<String> = e.into_vec().into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["reference", "metadata.k", "items[1].name"]);
    }
}
