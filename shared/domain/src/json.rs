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
