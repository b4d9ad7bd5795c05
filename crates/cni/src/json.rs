//! JSON helpers shared by results, errors, the dispatcher and the runtime (cnitool):
//! printing exactly as Go's `encoding/json` prints, decoding with a field path in the
//! error, and Go's tolerance of `null`. Only [`to_go_string`] is public (for cnitool).

use crate::document::Document;
use crate::objects_only::{ObjectsOnly, is_array_for_object};
use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};
use std::fmt;
use std::io;

/// Prints `value` as Go's `json.MarshalIndent(v, "", "    ")`: 4-space indent, no trailing
/// newline, Go's escaping. Struct fields keep their declaration order; see [`SortedKeys`]
/// for maps.
pub(crate) fn to_go_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    to_string_with(value, PrettyFormatter::with_indent(b"    "))
}

/// `value` as Go's `json.Marshal` prints the same data held in Go's generic types
/// (`map[string]interface{}`, `[]interface{}`, `float64`, `string`, `bool`, `nil`): compact,
/// object keys in byte order at every level, Go's escaping and number format. libcni builds
/// a plugin's stdin and its result cache this way, so printing like it makes those bytes
/// identical to libcni's.
pub fn to_go_string(value: &Value) -> String {
    // A `Value` has string keys and finite numbers only: serializing it cannot fail.
    to_string_with(&SortedKeys(value), CompactFormatter).unwrap_or_default()
}

fn to_string_with<T: Serialize + ?Sized, F: Formatter>(
    value: &T,
    formatter: F,
) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(512);
    value.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out,
        GoFormatter(formatter),
    ))?;
    // serde_json only ever writes UTF-8, so the lossy path never replaces anything.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// serde_json's layout `F` (compact or indented) with what Go's encoder does differently:
/// `<`, `>`, `&`, U+2028 and U+2029 in strings are escaped as `\u003c` etc. (Go's
/// `escapeHTML`, on in `json.Marshal`), and floats print as Go prints a `float64`. The
/// rest (`\n`, `\r`, `\t`, `\b`, `\f`, other controls as lower-case `\u00XX`, DEL
/// unescaped) is serde_json's own escaping, which is Go's (1.22 and later).
struct GoFormatter<F>(F);

impl<F: Formatter> Formatter for GoFormatter<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (index, c) in fragment.char_indices() {
            if matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') {
                writer.write_all(&fragment.as_bytes()[start..index])?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = index + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    /// Go decodes every JSON number into a `float64` and prints it with
    /// `strconv.FormatFloat(f, 'f', -1, 64)` when `1e-6 <= |f| < 1e21`, else in `'e'` form
    /// with at least two exponent digits trimmed (`1e+21`, `1e-07` becomes `1e-7`). Whole
    /// numbers print without a fraction: `1500.0` prints as `1500`. (Integers reach
    /// `write_i64`/`write_u64` and print exactly; beyond 2^53 Go would round them, but
    /// such values do not occur in network configs.)
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, f: f64) -> io::Result<()> {
        let abs = f.abs();
        if abs == 0.0 || (1e-6..1e21).contains(&abs) {
            // Rust's `Display` for f64 is the shortest round-trip decimal without an
            // exponent, which is what Go's 'f' with precision -1 prints.
            write!(writer, "{f}")
        } else {
            // Rust prints `1e21` / `1e-7`; Go prints `1e+21` / `1e-7`.
            let formatted = format!("{f:e}");
            match formatted.split_once('e') {
                Some((mantissa, exp)) if !exp.starts_with('-') => {
                    write!(writer, "{mantissa}e+{exp}")
                }
                _ => writer.write_all(formatted.as_bytes()),
            }
        }
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_array(writer)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array(writer)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(writer, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_array_value(writer)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object(writer)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object(writer)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(writer, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.begin_object_value(writer)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.0.end_object_value(writer)
    }
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

/// Decodes `T` from a JSON value, naming the failing field's path. Structs and maps must be
/// JSON objects (see [`ObjectsOnly`]).
pub(crate) fn decode<T: DeserializeOwned>(value: &Value) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(ObjectsOnly(value)).map_err(|err| {
        field_error(&err, |path| {
            follow(value, path.iter()).map(Value::to_string)
        })
    })
}

/// [`decode`] from the request's config document as read from stdin.
pub(crate) fn decode_document<T: DeserializeOwned>(doc: &Document<'_>) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(ObjectsOnly(doc))
        .map_err(|err| field_error(&err, |path| doc.lookup(path)))
}

/// The [`FieldError`] of a failed decode; `found` prints the value at a path of the input.
fn field_error(
    err: &serde_path_to_error::Error<serde_json::Error>,
    found: impl FnOnce(&serde_path_to_error::Path) -> Option<String>,
) -> FieldError {
    let path = err.path().to_string();
    let message = err.inner().to_string();
    // serde_path_to_error's path already ends with the unknown key; for an array in place
    // of an object it is the key that holds the array.
    let unknown_field = (unknown_field_name(&message).is_some() || is_array_for_object(&message))
        .then(|| (path.clone(), found(err.path()).unwrap_or_default()));
    FieldError {
        path,
        message,
        unknown_field,
    }
}

/// serde's wording is fixed: ``unknown field `foo`, expected one of ...``.
fn unknown_field_name(message: &str) -> Option<&str> {
    message
        .strip_prefix("unknown field `")?
        .split_once('`')
        .map(|(key, _)| key)
}

/// The value inside `root` at the end of `segments`, following object keys and array
/// indexes.
pub(crate) fn follow<'v, 'p>(
    root: &'v Value,
    mut segments: impl Iterator<Item = &'p serde_path_to_error::Segment>,
) -> Option<&'v Value> {
    use serde_path_to_error::Segment;
    segments.try_fold(root, |node, segment| match segment {
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
    fn go_string_is_compact_with_sorted_keys_at_every_level() {
        let value = json!({"type": "bridge", "name": "n", "ipam": {"z": 1, "a": [ {"b": true, "a": null} ]}});
        assert_eq!(
            to_go_string(&value),
            r#"{"ipam":{"a":[{"a":null,"b":true}],"z":1},"name":"n","type":"bridge"}"#
        );
    }

    const GO_ESCAPES: [(&str, &str); 6] = [
        ("plain", r#""plain""#),
        ("a<b>&c", r#""a\u003cb\u003e\u0026c""#),
        ("q\"b\\", r#""q\"b\\""#),
        ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
        ("\u{1}\u{1f}\u{7f}", "\"\\u0001\\u001f\u{7f}\""),
        ("\u{2028}\u{2029}é", "\"\\u2028\\u2029é\""),
    ];

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        for (input, want) in GO_ESCAPES {
            assert_eq!(to_go_string(&Value::from(input)), want, "{input:?}");
            // Keys, and the indented printer, escape the same way.
            let object = json!({ input: input });
            assert_eq!(to_go_string(&object), format!("{{{want}:{want}}}"));
            let pretty = to_go_pretty(&object).unwrap();
            assert_eq!(pretty, format!("{{\n    {want}: {want}\n}}"), "{input:?}");
        }
    }

    #[test]
    fn numbers_print_as_go_prints_float64() {
        let cases = [
            ("1500", "1500"),
            ("-3", "-3"),
            ("1500.0", "1500"),
            ("0.5", "0.5"),
            ("1e3", "1000"),
            ("0.000001", "0.000001"),
            ("0.0000001", "1e-7"),
            ("1e21", "1e+21"),
            ("123456789012345678", "123456789012345678"),
            ("0.0", "0"),
        ];
        for (input, want) in cases {
            let value: Value = serde_json::from_str(input).unwrap();
            assert_eq!(to_go_string(&value), want, "{input}");
        }
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
