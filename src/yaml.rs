//! Deterministic block-style YAML for JSON values that YAML 1.1 and YAML 1.2 readers agree on.
//!
//! `serde_yaml` writes YAML 1.2, where `off`, `yes` or `0777` are plain strings. kubectl, the API
//! server, PyYAML and go-yaml v2 read YAML 1.1 and turn those into booleans and numbers, so an
//! archived ConfigMap would no longer apply. This emitter quotes every scalar that either version
//! could read as something other than a string, and otherwise follows `kubectl get -o yaml`
//! (sorted keys, two-space indentation, list items level with their key) so that archived objects
//! and the diffs between them read the way people are used to.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Rendered keys longer than this use the explicit `? key` form: libyaml, go-yaml and PyYAML
/// reject implicit keys over 1024 characters, and bytes never undercount characters.
const MAX_IMPLICIT_KEY: usize = 1000;

/// Renders `value` as block-style YAML that YAML 1.1 readers (kubectl, PyYAML, go-yaml v2) and
/// YAML 1.2 readers (serde_yaml) all read back as the same value.
///
/// Map keys are written in sorted order and the output always ends with a newline, so equal values
/// always render to the same bytes.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        scalar => write_scalar(&mut out, scalar, 0),
    }
    out
}

/// Writes the entries of `map` at column `indent`; the first one starts at the cursor, which the
/// caller has already placed there (possibly after a `- `).
fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
    // Sorting here, not relying on the map's own order, keeps the output byte-stable even if some
    // dependency switches on serde_json's `preserve_order` feature.
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        let key = inline_text(key);
        if key.len() > MAX_IMPLICIT_KEY {
            out.push_str("? ");
            out.push_str(&key);
            out.push('\n');
            pad(out, indent);
        } else {
            out.push_str(&key);
        }
        out.push(':');
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                out.push('\n');
                pad(out, indent + 2);
                write_map(out, inner, indent + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                // kubectl style: a list under a key starts at the key's own column.
                out.push('\n');
                pad(out, indent);
                write_seq(out, items, indent);
            }
            scalar => {
                out.push(' ');
                write_scalar(out, scalar, indent);
            }
        }
    }
}

/// Writes the items of `items` as `- ` entries at column `indent`, the first one at the cursor.
fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_map(out, map, indent + 2),
            Value::Array(inner) if !inner.is_empty() => write_seq(out, inner, indent + 2),
            scalar => write_scalar(out, scalar, indent),
        }
    }
}

/// Writes a scalar (or an empty collection) and the newline after it. `indent` is the column of
/// the collection holding it, which is what a block scalar's indentation indicator counts from.
fn write_scalar(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) if text.contains('\n') && fits_literal_block(text) => {
            return write_literal_block(out, text, indent);
        }
        Value::String(text) => out.push_str(&inline_text(text)),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
    out.push('\n');
}

/// Writes a number the way both YAML versions read it back as the same number.
fn write_number(out: &mut String, number: &Number) {
    let text = number.to_string();
    // serde_json prints floats like `1e100`, which YAML 1.1 reads as a string: its float syntax
    // needs a `.` in the mantissa and a sign on the exponent (`1.0e+100`).
    match text.split_once('e') {
        Some((mantissa, exponent)) if number.is_f64() => {
            out.push_str(mantissa);
            if !mantissa.contains('.') {
                out.push_str(".0");
            }
            out.push('e');
            if !exponent.starts_with(['-', '+']) {
                out.push('+');
            }
            out.push_str(exponent);
        }
        _ => out.push_str(&text),
    }
}

/// Whether `text` (known to contain a newline) can be written as a literal block scalar verbatim.
fn fits_literal_block(text: &str) -> bool {
    // A text of nothing but newlines has no content line to anchor a block on, and `\r` or other
    // control characters would be lost or rejected, so those stay double-quoted.
    text.chars().any(|c| c != '\n') && text.chars().all(|c| c == '\n' || c == '\t' || is_text(c))
}

/// Writes `text` as a `|` block scalar whose lines sit two columns right of `indent`.
fn write_literal_block(out: &mut String, text: &str, indent: usize) {
    let body = text.trim_end_matches('\n');
    let trailing_newlines = text.len() - body.len();
    out.push('|');
    // Without an indicator, readers take the block's indentation from its first non-empty line, so
    // leading whitespace there would be swallowed as indentation (or, for a tab, rejected).
    if body.trim_start_matches('\n').starts_with([' ', '\t']) {
        out.push('2');
    }
    out.push_str(match trailing_newlines {
        0 => "-",
        1 => "",
        _ => "+",
    });
    for line in body.split('\n') {
        out.push('\n');
        // Empty lines stay empty rather than carry trailing indentation into diffs.
        if !line.is_empty() {
            pad(out, indent + 2);
            out.push_str(line);
        }
    }
    out.push('\n');
    for _ in 1..trailing_newlines {
        out.push('\n');
    }
}

/// Renders `text` as a single-line scalar: plain when no reader could mistake it, else quoted.
fn inline_text(text: &str) -> String {
    if is_plain_safe(text) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // Everything `is_text` refuses lies in the Basic Multilingual Plane.
            c if !is_text(c) => {
                write!(out, "\\u{:04x}", u32::from(c)).expect("writing to a String")
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `text` reads back as this very string when written unquoted, in YAML 1.1 and 1.2 alike.
fn is_plain_safe(text: &str) -> bool {
    let (Some(first), Some(last)) = (text.chars().next(), text.chars().next_back()) else {
        return false; // the empty string reads as null
    };
    let after_first = text[first.len_utf8()..].chars().next();
    let starts_with_indicator = match first {
        // `-x` is an ordinary scalar (as in `--flag`), but `- x` and a lone `-` open a list item.
        '-' => after_first.is_none_or(char::is_whitespace),
        '?' | ':' | ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\''
        | '"' | '%' | '@' | '`' => true,
        _ => false,
    };
    !(starts_with_indicator
        || first.is_whitespace()
        || last.is_whitespace()
        || last == ':'
        || text.contains(": ")
        || text.contains(" #")
        // Document markers once they land in column 0, as top-level keys and scalars do.
        || text.starts_with("---")
        || text.starts_with("...")
        || !text.chars().all(is_text)
        || is_reserved_word(text)
        || looks_numeric(text))
}

/// Whether some reader resolves `text` to a boolean, a null or a special key in either version.
fn is_reserved_word(text: &str) -> bool {
    // Compared without case: quoting `yEs` too is harmless and keeps the list short. `<<` is the
    // merge key and `=` the YAML 1.1 value key, which PyYAML refuses to load.
    text.len() <= 5
        && matches!(
            text.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null" | "~" | "<<" | "="
        )
}

/// Whether `text` could be a number or a timestamp in either version.
fn looks_numeric(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if matches!(unsigned.to_ascii_lowercase().as_str(), ".inf" | ".nan") {
        return true;
    }
    let mut bytes = text.bytes();
    // go-yaml v2 drops every `_` before parsing a number, which is why `+_1` counts.
    let starts_like_number = match (bytes.next(), bytes.next()) {
        (Some(b'0'..=b'9'), _) => true,
        (Some(b'+' | b'-' | b'.'), Some(c)) => c.is_ascii_digit() || c == b'.' || c == b'_',
        _ => false,
    };
    // Every int, float, octal, hex, binary, sexagesimal and timestamp form in either version is
    // spelled with these characters alone, so quantities like `128Mi` or `500m` can stay plain.
    starts_like_number
        && text
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "_.:+-xXoOpPtTzZ ".contains(c))
}

/// Whether `c` can appear verbatim in a plain or quoted scalar for every reader: YAML 1.1's
/// printable set, minus the line breaks NEL, LS and PS, and minus the byte-order mark.
fn is_text(c: char) -> bool {
    matches!(c,
        ' '..='~'
        | '\u{A0}'..='\u{2027}'
        | '\u{202A}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FEFE}'
        | '\u{FF00}'..='\u{FFFD}'
        | '\u{10000}'..)
}

fn pad(out: &mut String, width: usize) {
    out.extend(std::iter::repeat_n(' ', width));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Renders `value`, checks serde_yaml reads it back unchanged, and returns the text.
    fn render(value: &Value) -> String {
        let text = to_string(value);
        let back: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("serde_yaml rejects {text:?}: {e}"));
        assert_eq!(&back, value, "read back differently from {text:?}");
        text
    }

    /// A string rendered as a top-level scalar, without the final newline.
    fn scalar(text: &str) -> String {
        let out = render(&json!(text));
        out.strip_suffix('\n')
            .expect("ends with a newline")
            .to_owned()
    }

    #[test]
    fn deployment_renders_like_kubectl() {
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {"app.kubernetes.io/name": "web"},
                "annotations": {},
            },
            "spec": {
                "replicas": 3,
                "paused": false,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": "nginx:1.27",
                            "args": ["--port=8080", "-v"],
                            "env": [
                                {"name": "DEBUG", "value": "off"},
                                {"name": "RATIO", "value": "0.5"},
                            ],
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {},
                        }],
                        "nodeSelector": null,
                        "tolerations": [],
                    },
                },
            },
        });
        let expected = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  annotations: {}
  labels:
    app.kubernetes.io/name: web
  name: web
  namespace: default
spec:
  paused: false
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - args:
        - --port=8080
        - -v
        env:
        - name: DEBUG
          value: \"off\"
        - name: RATIO
          value: \"0.5\"
        image: nginx:1.27
        name: web
        ports:
        - containerPort: 8080
          protocol: TCP
        resources: {}
      nodeSelector: null
      tolerations: []
";
        assert_eq!(render(&deployment), expected);
        assert_eq!(to_string(&deployment), to_string(&deployment.clone()));
    }

    #[test]
    fn configmap_data_uses_block_scalars() {
        let config_map = json!({
            "data": {"app.yaml": "debug: off\nlevel: 3\n", "motd": "hello\n\nworld"},
            "kind": "ConfigMap",
        });
        let expected = "\
data:
  app.yaml: |
    debug: off
    level: 3
  motd: |-
    hello

    world
kind: ConfigMap
";
        assert_eq!(render(&config_map), expected);
    }

    #[test]
    fn bool_and_null_words_are_quoted() {
        for word in [
            "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE",
            "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null",
            "NULL", "~", "yEs", "<<", "=",
        ] {
            assert_eq!(scalar(word), format!("\"{word}\""), "{word}");
        }
        assert_eq!(scalar(""), "\"\"");
    }

    #[test]
    fn number_like_strings_are_quoted() {
        for word in [
            "0",
            "1",
            "-1",
            "+1",
            "1.0",
            ".5",
            "-.5",
            "+.5",
            "1e3",
            "1E3",
            "1.0e+3",
            "0o17",
            "017",
            "0x1F",
            "-0x1F",
            "0b1",
            "1:20",
            "190:20:30",
            ".inf",
            ".Inf",
            "-.inf",
            "+.INF",
            ".nan",
            ".NaN",
            "1_000",
            "+_1",
            "._5",
            "2026-01-01",
            "2026-01-01T00:00:00Z",
            "1.2.3",
            "..",
            "...",
            "0.5",
            "10.0.0.1",
            "1e-3",
            "0X1F",
            "0B1",
            "0O17",
            "0x1p-2",
            "1d",
            "0xCAFE",
            "2001-12-14 21:59:43.10 -5",
            "2001-12-14t21:59:43.10Z",
        ] {
            assert_eq!(scalar(word), format!("\"{word}\""), "{word}");
        }
    }

    #[test]
    fn indicators_and_separators_are_quoted() {
        for word in [
            "- x",
            "-",
            "?",
            "? x",
            ":",
            ":x",
            ",x",
            "[x",
            "]",
            "{x}",
            "}",
            "#x",
            "&x",
            "*x",
            "!x",
            "|",
            ">x",
            "'x'",
            "\"x",
            "%x",
            "@x",
            "`x",
            "a: b",
            "a #b",
            "a:",
            "http:",
            "---",
            "--- x",
            "... q",
            " lead",
            "trail ",
            "\u{a0}nbsp",
        ] {
            let quoted = serde_json::to_string(word).unwrap();
            assert_eq!(scalar(word), quoted, "{word}");
        }
    }

    #[test]
    fn ordinary_strings_stay_plain() {
        for word in [
            "web",
            "nginx:1.27",
            "app.kubernetes.io/name",
            "f:metadata",
            "k:{\"name\":\"x\"}",
            ".",
            "--config=/etc/x.conf",
            "-v",
            "a,b",
            "it's",
            "say \"hi\"",
            "a#b",
            "a:b",
            "x-y",
            "+",
            "inf",
            "nan",
            "yesterday",
            "only",
            "a b  c",
            "100%",
            "500m",
            "128Mi",
            "1Gi",
            "30s",
            "-5m",
            ".5Gi",
            "v1.2.3",
            "héllo wörld",
            "日本語",
            "🚀",
            "e5",
            "x: y:z".replace(": ", ":").as_str(),
        ] {
            assert_eq!(scalar(word), word, "{word}");
        }
    }

    #[test]
    fn control_and_break_characters_are_escaped() {
        let cases = [
            ("\t", "\"\\t\""),
            ("a\tb", "\"a\\tb\""),
            ("a\r\nb", "\"a\\r\\nb\""),
            ("\0", "\"\\u0000\""),
            ("\u{1b}[0m", "\"\\u001b[0m\""),
            ("\u{7f}", "\"\\u007f\""),
            ("\u{85}", "\"\\u0085\""),
            ("a\u{2028}b\u{2029}", "\"a\\u2028b\\u2029\""),
            ("\u{feff}x", "\"\\ufeffx\""),
            ("\u{ffff}", "\"\\uffff\""),
            ("back\\slash \"q\"", "back\\slash \"q\""),
            ("\\\" ", "\"\\\\\\\" \""),
        ];
        for (text, expected) in cases {
            assert_eq!(scalar(text), expected, "{text:?}");
        }
    }

    #[test]
    fn block_scalars_pick_chomping_and_indentation() {
        let cases = [
            ("a\nb", "|-\n  a\n  b"),
            ("a\nb\n", "|\n  a\n  b"),
            ("a\nb\n\n", "|+\n  a\n  b\n"),
            ("a\n\n\nb\n", "|\n  a\n\n\n  b"),
            ("\n\nb", "|-\n\n\n  b"),
            ("  lead\nb\n", "|2\n    lead\n  b"),
            ("\n  lead", "|2-\n\n    lead"),
            ("  \nb", "|2-\n    \n  b"),
            ("\tx\ny", "|2-\n  \tx\n  y"),
            ("a\n  b\n", "|\n  a\n    b"),
            ("trailing  \nspaces ", "|-\n  trailing  \n  spaces "),
            ("- a\n- b\n", "|\n  - a\n  - b"),
            ("---\n...\n", "|\n  ---\n  ..."),
            ("yes\nno", "|-\n  yes\n  no"),
            ("日本\n語", "|-\n  日本\n  語"),
        ];
        for (text, expected) in cases {
            assert_eq!(scalar(text), expected, "{text:?}");
        }
    }

    #[test]
    fn multi_line_strings_that_cannot_be_blocks_are_quoted() {
        assert_eq!(scalar("\n"), "\"\\n\"");
        assert_eq!(scalar("\n\n"), "\"\\n\\n\"");
        assert_eq!(scalar("a\r\nb\r\n"), "\"a\\r\\nb\\r\\n\"");
        assert_eq!(scalar("a\n\u{7}"), "\"a\\n\\u0007\"");
    }

    #[test]
    fn block_scalars_indent_from_their_collection() {
        let value = json!({
            "top": " x\ny",
            "list": [" x\ny", [" x\ny"], {"k": " x\ny"}],
        });
        let expected = "\
list:
- |2-
   x
  y
- - |2-
     x
    y
- k: |2-
     x
    y
top: |2-
   x
  y
";
        assert_eq!(render(&value), expected);
    }

    #[test]
    fn keys_follow_the_string_rules() {
        let value = json!({
            "yes": 1, "a: b": 2, "- x": 3, "1.0": 4, "app.kubernetes.io/name": 5, "": 6,
            " lead": 7, "multi\nline": 8, ".": 9, "f:metadata": {"f:name": {}}, "<<": 10,
            "... q": 11,
        });
        let expected = "\
\"\": 6
\" lead\": 7
\"- x\": 3
.: 9
\"... q\": 11
\"1.0\": 4
\"<<\": 10
\"a: b\": 2
app.kubernetes.io/name: 5
f:metadata:
  f:name: {}
\"multi\\nline\": 8
\"yes\": 1
";
        assert_eq!(render(&value), expected);
    }

    #[test]
    fn very_long_keys_use_explicit_form() {
        let long = "k".repeat(1500);
        let value = json!({ long.clone(): {"a": [1]}, "b": [{ long.clone(): "v" }] });
        let expected = format!("b:\n- ? {long}\n  : v\n? {long}\n:\n  a:\n  - 1\n");
        assert_eq!(render(&value), expected);
        let short = "k".repeat(MAX_IMPLICIT_KEY);
        assert_eq!(
            render(&json!({ short.clone(): 1 })),
            format!("{short}: 1\n")
        );
    }

    #[test]
    fn nested_and_empty_collections() {
        let value = json!([[1, [2, 3]], [], {}, [{}], [{"a": [1, []]}], null]);
        let expected = "\
- - 1
  - - 2
    - 3
- []
- {}
- - {}
- - a:
    - 1
    - []
- null
";
        assert_eq!(render(&value), expected);
        assert_eq!(render(&json!({})), "{}\n");
        assert_eq!(render(&json!([])), "[]\n");
        assert_eq!(render(&json!(null)), "null\n");
        assert_eq!(
            render(&json!({"a": {"b": {"c": []}}})),
            "a:\n  b:\n    c: []\n"
        );
    }

    #[test]
    fn numbers_read_back_as_numbers_in_both_versions() {
        let cases = [
            (json!(0), "0"),
            (json!(-7), "-7"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(i64::MIN), "-9223372036854775808"),
            (json!(1.5), "1.5"),
            (json!(3.0), "3.0"),
            (json!(-0.0), "-0.0"),
            (json!(1e100), "1.0e+100"),
            (json!(-2.5e-7), "-2.5e-7"),
            (json!(5e-324), "5.0e-324"),
        ];
        for (value, expected) in cases {
            assert_eq!(render(&value), format!("{expected}\n"));
        }
    }

    #[test]
    fn unicode_strings_round_trip() {
        let value = json!({
            "emoji": "🚀 launch",
            "greek": "αβγ",
            "mixed": "日本語: テスト",
            "private": "\u{e000}\u{10ffff}",
        });
        let expected = "\
emoji: 🚀 launch
greek: αβγ
mixed: \"日本語: テスト\"
private: \u{e000}\u{10ffff}
";
        assert_eq!(render(&value), expected);
    }
}
