//! JSON and base64 exactly as Go's `encoding/json` writes them, for the bytes libcni puts on
//! a plugin's stdin and in its result cache (docs/spec.md#request, docs/spec.md#result-cache).
//!
//! libcni builds both by decoding into `map[string]interface{}` and calling `json.Marshal`,
//! so the output is compact, object keys are sorted (byte order) at every level, `<`, `>`,
//! `&`, U+2028 and U+2029 are escaped as `\u003c` etc., and numbers went through `float64`.
//! A Go `[]byte` field is standard base64 with padding. Mirroring all of that makes our
//! cache files byte-identical to libcni's, so a node can mix runtimes.
//!
//! This module owns formatting only: it never decides *what* goes in a document.

use serde_json::{Number, Value};
use std::fmt::Write as _;

/// `value` as Go's `json.Marshal` prints the same data held in Go's generic types
/// (`map[string]interface{}`, `[]interface{}`, `float64`, `string`, `bool`, `nil`).
pub fn to_string(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted here rather than relying on serde_json's map order: another workspace
            // member turning on `preserve_order` would otherwise change our bytes.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Go decodes every JSON number into a `float64` and prints it with
/// `strconv.FormatFloat(f, 'f', -1, 64)` when `1e-6 <= |f| < 1e21`, else in `'e'` form with
/// a two-digit-minimum exponent trimmed (`1e+21`, `1e-07` becomes `1e-7`). Integers that a
/// `float64` holds exactly print the same either way; `1500.0` prints as `1500`.
fn write_number(out: &mut String, n: &Number) {
    if n.is_i64() || n.is_u64() {
        // Exact in Go too unless beyond 2^53, where Go would round: such values do not
        // occur in network configs, and keeping them exact loses nothing.
        let _ = write!(out, "{n}");
        return;
    }
    let Some(f) = n.as_f64() else {
        let _ = write!(out, "{n}");
        return;
    };
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        // Rust's `Display` for f64 is the shortest round-trip decimal without an exponent,
        // which is what Go's 'f' with precision -1 prints.
        let _ = write!(out, "{f}");
    } else {
        // Rust prints `1e21` / `1e-7`; Go prints `1e+21` / `1e-7`.
        let formatted = format!("{f:e}");
        match formatted.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}");
            }
            _ => out.push_str(&formatted),
        }
    }
}

/// A JSON string with Go's escaping (`encodeState.string` with `escapeHTML`).
fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go >= 1.22 writes these two short forms too.
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                out.push(HEX[b >> 4] as char);
                out.push(HEX[b & 0xf] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), as Go marshals a `[]byte`.
///
/// Written here rather than pulling in a crate: twenty lines, tested against the RFC's
/// vectors, and it keeps the shared workspace manifest untouched.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64_ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64 strictly, as Go's `json.Unmarshal` into a `[]byte`
/// does (`base64.StdEncoding`); `None` on any malformed input. Go also skips `\r` and
/// `\n`, so we do.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .collect();
    if symbols.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| {
        BASE64_ALPHABET
            .iter()
            .position(|&a| a == c)
            .map(|v| v as u32)
    };
    let mut out = Vec::with_capacity(symbols.len() / 4 * 3);
    let quads = symbols.chunks(4).count();
    for (index, quad) in symbols.chunks(4).enumerate() {
        let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if padding > 2 || (padding > 0 && index + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - padding] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * padding as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Bits beyond the last whole byte are dropped, not checked: Go's StdEncoding is
        // not in Strict mode, so it accepts them too.
        out.extend_from_slice(&decoded[..3 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_compact_with_sorted_keys_at_every_level() {
        let value = json!({"type": "bridge", "name": "n", "ipam": {"z": 1, "a": [ {"b": true, "a": null} ]}});
        assert_eq!(
            to_string(&value),
            r#"{"ipam":{"a":[{"a":null,"b":true}],"z":1},"name":"n","type":"bridge"}"#
        );
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let cases = [
            ("plain", r#""plain""#),
            ("a<b>&c", r#""a\u003cb\u003e\u0026c""#),
            ("q\"b\\", r#""q\"b\\""#),
            ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
            ("\u{1}\u{1f}\u{7f}", "\"\\u0001\\u001f\u{7f}\""),
            ("\u{2028}\u{2029}é", "\"\\u2028\\u2029é\""),
        ];
        for (input, want) in cases {
            assert_eq!(to_string(&Value::from(input)), want, "{input:?}");
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
            assert_eq!(to_string(&value), want, "{input}");
        }
    }

    #[test]
    fn base64_matches_the_rfc_4648_vectors_both_ways() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        // All 256 byte values survive a round trip (every alphabet symbol appears).
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
    }

    #[test]
    fn malformed_base64_is_refused() {
        for bad in ["Zg=", "Zg===", "Z===", "Zm9v!A==", "Zg==Zg==", "Zm9-"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
    }
}
