//! JSON helpers shared by results, errors and the dispatcher: printing exactly as the Go lib
//! prints (docs/spec.md#printing), decoding with a field path in the error, and Go's tolerance of
//! `null`. Private to the crate.

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::fmt;

/// Prints `value` as Go's `json.MarshalIndent(v, "", "    ")`: 4-space indent, no trailing
/// newline. Struct fields keep their declaration order; see [`SortedKeys`] for maps.
pub(crate) fn to_go_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(512);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out, formatter,
    ))?;
    // serde_json only ever writes UTF-8, so the lossy path never replaces anything.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Serializes a [`Value`] with object keys in byte order at every level, as Go prints a
/// `map[string]interface{}`.
///
/// Without serde_json's `preserve_order` feature a `Value` map is already sorted; this wrapper
/// keeps the output right even if another workspace member turns that feature on (cargo
/// unifies features across every package built together).
pub(crate) struct SortedKeys<'a>(pub(crate) &'a Value);

impl Serialize for SortedKeys<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &SortedKeys(value))?;
                }
                out.end()
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(SortedKeys)),
            scalar => scalar.serialize(serializer),
        }
    }
}

/// `deserialize_with` for fields Go leaves at their zero value when the JSON says `null`
/// (`"routes": null`, `"dns": null`); pair it with `#[serde(default)]` for absent keys.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A decode failure with the path of the field that caused it.
#[derive(Debug)]
pub(crate) struct FieldError {
    /// `ipam.ranges[0][1].gateway`, or `.` for the document itself.
    pub(crate) path: String,
    /// serde's message, e.g. ``invalid type: string "x", expected a boolean``.
    pub(crate) message: String,
    /// Set when the failure is serde's `unknown field` (a struct with
    /// `deny_unknown_fields`): the offending key and its value as JSON text.
    pub(crate) unknown_field: Option<(String, String)>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path == "." {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Decodes `T` from a JSON value, naming the failing field's path.
pub(crate) fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        // serde_path_to_error's path already ends with the unknown key.
        let unknown_field = unknown_field_name(&message).map(|_| {
            let found = lookup(value, err.path()).map(Value::to_string);
            (path.clone(), found.unwrap_or_default())
        });
        FieldError {
            path,
            message,
            unknown_field,
        }
    })
}

/// serde's wording is fixed: ``unknown field `foo`, expected one of ...``.
fn unknown_field_name(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")?
        .split_once('`')
        .map(|(key, _)| key)
}

/// The value at `path` inside `root`, following object keys and array indexes.
fn lookup<'v>(root: &'v Value, path: &serde_path_to_error::Path) -> Option<&'v Value> {
    use serde_path_to_error::Segment;
    path.iter().try_fold(root, |node, segment| match segment {
        Segment::Seq { index } => node.get(index),
        Segment::Map { key } => node.get(key.as_str()),
        Segment::Enum { .. } | Segment::Unknown => Some(node),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorted_keys_sorts_every_level_in_byte_order() {
        let value = json!({"b": 1, "a": [{"z": 1, "Z": 2}], "C": {"y": 1, "x": 2}});
        let printed = serde_json::to_string(&SortedKeys(&value)).unwrap();
        assert_eq!(printed, r#"{"C":{"x":2,"y":1},"a":[{"Z":2,"z":1}],"b":1}"#);
    }

    #[test]
    fn go_pretty_uses_four_spaces_and_no_trailing_newline() {
        let printed = to_go_pretty(&json!({"a": [1], "b": {}, "c": []})).unwrap();
        assert_eq!(
            printed,
            "{\n    \"a\": [\n        1\n    ],\n    \"b\": {},\n    \"c\": []\n}"
        );
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        #[serde(default)]
        flag: bool,
    }

    #[test]
    fn decode_names_the_field_path() {
        let err = decode::<Outer>(&json!({"inner": [{}, {"flag": "yes"}]})).unwrap_err();
        assert_eq!(err.path, "inner[1].flag");
        assert!(err.message.contains("expected a boolean"), "{err}");
        assert!(err.unknown_field.is_none());
    }

    #[test]
    fn decode_reports_unknown_field_key_and_value() {
        let err = decode::<Outer>(&json!({"inner": [{"bogus": 5}]})).unwrap_err();
        let (key, value) = err.unknown_field.expect("unknown field reported");
        assert_eq!(key, "inner[0].bogus");
        assert_eq!(value, "5");
    }
}
