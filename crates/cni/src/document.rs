//! The request's network config as read from stdin, parsed once: each top-level key with the
//! text of its value, a slice of stdin. A value becomes data only when a config type asks for
//! its key, and then straight into that type; a key nobody declares is never built at all.
//!
//! Why not one `serde_json::Value` of the whole document: a `Value` takes 16 to 70 times the
//! text's size (a 1 MiB array of small numbers is 16 MB of `Value`s), and decoding the
//! well-known keys and the plugin's keys from a borrowed `Value` copied `prevResult`,
//! `runtimeConfig` and `args` once more. Figures in README.md ("Limits").
//!
//! What a `Value` gave and this keeps: a repeated key's last value wins (Go's
//! `encoding/json`), at the top level here and inside a value because each value is built as
//! a `Value` first; the same syntax errors (a validating pass, see [`Document::parse`]).

use serde::de::value::StrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};
use serde_json::Value;
use serde_json::value::RawValue;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt;

/// The top-level keys of the request config, in key order, each with its value unparsed.
/// A sorted `Vec` rather than a map: it is built once, read in order, and changed once.
pub(crate) struct Document<'a> {
    entries: Vec<(String, Slot<'a>)>,
}

/// One top-level value, and the `Value` built from it once a config type read it through a
/// reference (kept for the next type that reads it: the well-known keys and the plugin's
/// keys are decoded from the same document).
struct Slot<'a> {
    entry: Entry<'a>,
    built: OnceCell<Value>,
}

/// One top-level value.
#[derive(Clone, Copy)]
enum Entry<'a> {
    /// As written on stdin.
    Raw(&'a RawValue),
    /// Put in by the dispatcher (the resolved `cniVersion`).
    Str(&'static str),
}

/// Why stdin is not a config document: serde_json's syntax error, or valid JSON that is not
/// an object.
pub(crate) enum NotADocument {
    Syntax(serde_json::Error),
    NotAnObject,
}

impl<'a> Document<'a> {
    /// Parses `stdin`. A first pass only validates, with the same parser and limits as
    /// building a `Value` (the recursion limit, number range, escapes), so that every input
    /// a `Value` refused is still refused with the same message; capturing raw values alone
    /// would skip the nesting limit inside them. The second pass collects the top-level
    /// keys, the last of a repeated key winning.
    pub(crate) fn parse(stdin: &'a [u8]) -> Result<Document<'a>, NotADocument> {
        serde_json::from_slice::<Valid>(stdin).map_err(NotADocument::Syntax)?;
        let entries: BTreeMap<String, &RawValue> =
            serde_json::from_slice(stdin).map_err(|_| NotADocument::NotAnObject)?;
        Ok(Document {
            entries: entries
                .into_iter()
                .map(|(key, raw)| (key, Slot::new(Entry::Raw(raw))))
                .collect(),
        })
    }

    /// The value of `key` built as a `Value`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<Value> {
        let at = self.find(key).ok()?;
        Some(self.entries[at].1.entry.value())
    }

    /// Sets `key` to the string `value`.
    pub(crate) fn set_str(&mut self, key: &str, value: &'static str) {
        let slot = Slot::new(Entry::Str(value));
        match self.find(key) {
            Ok(at) => self.entries[at].1 = slot,
            Err(at) => self.entries.insert(at, (key.to_owned(), slot)),
        }
    }

    /// Where `key` is, or would be inserted.
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }

    /// The value at `path` (a top-level key, then keys and indexes inside its value) as
    /// compact JSON, for error messages.
    pub(crate) fn lookup(&self, path: &serde_path_to_error::Path) -> Option<String> {
        let mut segments = path.iter();
        let serde_path_to_error::Segment::Map { key } = segments.next()? else {
            return None;
        };
        let value = self.get(key)?;
        crate::json::follow(&value, segments).map(Value::to_string)
    }
}

impl<'a> Slot<'a> {
    fn new(entry: Entry<'a>) -> Slot<'a> {
        Slot {
            entry,
            built: OnceCell::new(),
        }
    }
}

impl Entry<'_> {
    /// The value as a `Value`. Stdin was validated as a whole, so the text parses.
    fn value(self) -> Value {
        match self {
            Entry::Raw(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            Entry::Str(s) => Value::from(s),
        }
    }

    fn is_null(self) -> bool {
        matches!(self, Entry::Raw(raw) if raw.get() == "null")
    }
}

/// The document as a map deserializer: config structs decode from it as from a JSON object.
impl<'de> Deserializer<'de> for &'de Document<'_> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(Entries {
            entries: self.entries.iter(),
            next: None,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// The entries of a [`Document`], keys first.
struct Entries<'de, 'a> {
    entries: std::slice::Iter<'de, (String, Slot<'a>)>,
    next: Option<&'de Slot<'a>>,
}

impl<'de> MapAccess<'de> for Entries<'de, '_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, slot)) = self.entries.next() else {
            return Ok(None);
        };
        self.next = Some(slot);
        seed.deserialize(StrDeserializer::new(key)).map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        match self.next.take() {
            Some(slot) => seed.deserialize(Lazy(slot)),
            None => Err(de::Error::custom("value requested before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// One top-level value, built only when a config type reads it: not at all for an ignored
/// (unknown) key. A `Value` (`prevResult`, `runtimeConfig`) or a map asks through
/// `deserialize_any` or `deserialize_map` and gets a value built for it alone, whose parts
/// move into it; anything else is read from the slot's `Value`, through the same code as
/// [`crate::config::decode`] runs on sub-sections.
struct Lazy<'de, 'a>(&'de Slot<'a>);

impl<'de> Lazy<'de, '_> {
    fn built(&self) -> &'de Value {
        self.0.built.get_or_init(|| self.0.entry.value())
    }
}

/// `deserialize_*` methods (with their arguments before the visitor) answered from the
/// slot's `Value`.
macro_rules! from_built {
    ($($method:ident($($arg:ident: $ty:ty),*))*) => {$(
        fn $method<V: Visitor<'de>>(
            self,
            $($arg: $ty,)*
            visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.built().$method($($arg,)* visitor)
        }
    )*};
}

/// `deserialize_*` methods answered from a `Value` built for the caller alone.
macro_rules! from_owned {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.entry.value().$method(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for Lazy<'de, '_> {
    type Error = serde_json::Error;

    from_owned! { deserialize_any deserialize_map }

    from_built! {
        deserialize_bool() deserialize_i8() deserialize_i16() deserialize_i32()
        deserialize_i64() deserialize_i128() deserialize_u8() deserialize_u16()
        deserialize_u32() deserialize_u64() deserialize_u128() deserialize_f32()
        deserialize_f64() deserialize_char() deserialize_str() deserialize_string()
        deserialize_bytes() deserialize_byte_buf() deserialize_unit() deserialize_seq()
        deserialize_identifier()
        deserialize_unit_struct(name: &'static str)
        deserialize_newtype_struct(name: &'static str)
        deserialize_tuple(len: usize)
        deserialize_tuple_struct(name: &'static str, len: usize)
        deserialize_struct(name: &'static str, fields: &'static [&'static str])
        deserialize_enum(name: &'static str, variants: &'static [&'static str])
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    /// As a `Value` answers, without building it: `Some` reads the value as what it holds.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.0.entry.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }
}

/// Any JSON value, checked as building a `Value` checks it and then dropped: every value
/// goes through serde_json's `deserialize_any`, as a `Value`'s does (`IgnoredAny` would
/// skip nested values without the recursion limit or the number range).
struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Valid, D::Error> {
        deserializer.deserialize_any(Valid)
    }
}

/// `visit_*` methods for the scalars serde_json hands out: valid as they are.
macro_rules! accept_scalars {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E>(self, _: $ty) -> Result<Valid, E> {
            Ok(Valid)
        }
    )*};
}

impl<'de> Visitor<'de> for Valid {
    type Value = Valid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    accept_scalars! { visit_bool: bool visit_i64: i64 visit_u64: u64 visit_f64: f64 visit_str: &str }

    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        while map.next_entry::<Valid, Valid>()?.is_some() {}
        Ok(Valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Document<'_>, String> {
        Document::parse(text.as_bytes()).map_err(|e| match e {
            NotADocument::Syntax(e) => e.to_string(),
            NotADocument::NotAnObject => "not an object".into(),
        })
    }

    #[test]
    fn refuses_what_a_value_refuses_with_the_same_message() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        for text in [
            "",
            "{",
            "{\"a\": 1e400}",
            "{\"a\": \"\\ud800\"}",
            "{\"a\": [1,]}",
            "{} x",
            deep.as_str(),
        ] {
            let want = serde_json::from_str::<Value>(text).unwrap_err().to_string();
            assert_eq!(parse(text).err(), Some(want), "{text}");
        }
        for text in ["[]", "null", "\"x\"", "5"] {
            assert_eq!(
                parse(text).err().as_deref(),
                Some("not an object"),
                "{text}"
            );
        }
    }

    #[test]
    fn the_last_of_a_repeated_key_wins_at_every_depth() {
        let doc = parse(r#"{"a": 1, "b": {"c": 1, "c": 2}, "a": 3}"#).unwrap();
        assert_eq!(doc.get("a"), Some(Value::from(3)));
        assert_eq!(doc.get("b"), Some(serde_json::json!({"c": 2})));
    }

    #[test]
    fn structs_decode_from_it_ignoring_unknown_keys() {
        #[derive(Deserialize)]
        struct Known {
            a: u32,
        }
        let doc = parse(r#"{"a": 1, "unknown": [[[1]]]}"#).unwrap();
        let known = Known::deserialize(&doc).unwrap();
        assert_eq!(known.a, 1);
    }
}
