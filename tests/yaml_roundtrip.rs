//! The YAML emitter's output reads back as the value it came from, in YAML 1.2 (serde_yaml) and
//! YAML 1.1 (PyYAML, the same resolution rules kubectl's go-yaml v2 applies).

use std::io::Write as _;
use std::process::{Command, Stdio};

use k8s_sync::yaml;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Number, Value, json};

/// Strings some YAML reader would misread if written unquoted, or that stress the layout.
const TRICKY: &[&str] = &[
    "yes",
    "Yes",
    "y",
    "N",
    "no",
    "on",
    "OFF",
    "true",
    "False",
    "null",
    "~",
    "",
    " ",
    " lead",
    "trail ",
    "a: b",
    "a:",
    "a #b",
    "#c",
    "- x",
    "-",
    "--flag",
    "---",
    "...",
    "? q",
    ":",
    "1.0",
    "0",
    "-1",
    ".5",
    "1e3",
    "0o17",
    "017",
    "0x1F",
    "0b1",
    "1:20",
    "1_000",
    ".inf",
    "-.Inf",
    ".nan",
    "2026-01-01",
    "<<",
    "=",
    ".",
    "&a",
    "*a",
    "!tag",
    "|",
    ">",
    "%d",
    "@x",
    "`x",
    "'q'",
    "\"q\"",
    "{}",
    "[]",
    "app.kubernetes.io/name",
    "f:metadata",
    "128Mi",
    ".5Gi",
    "-5m",
    "10.0.0.1",
    "... q",
    "--- q",
    "multi\nline",
    "end\n",
    "two\n\n",
    "\n",
    "\n\n",
    "  indented\nblock",
    "\tx\ny",
    "a\r\nb",
    "\u{85}",
    "\u{2028}",
    "\u{feff}",
    "\u{7f}",
    "\0",
    "日本語",
    "🚀",
];

/// Fragments glued together into strings, so the tricky parts land at starts, ends and middles.
const PIECES: &[&str] = &[
    "a", "b", "yes", "0", "1", ".", "-", "+", "_", ":", " ", "  ", "#", "\n", "\t", "\r", "\"",
    "'", "\\", "?", "|", ">", ",", "[", "{", "é", "💡", "\u{85}", "\u{7}", "e", "x", "Mi",
];

/// Strings from the tricky pool, glued fragments, printable ASCII with breaks, or any Unicode.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(TRICKY).prop_map(str::to_owned),
        prop::collection::vec(prop::sample::select(PIECES), 0..8).prop_map(|p| p.concat()),
        "[ -~\n\t]{0,16}",
        any::<String>(),
    ]
}

/// Arbitrary JSON, with keys drawn from the same strings as values.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn serde_yaml_reads_back_the_same_value(value in json_value()) {
        let text = yaml::to_string(&value);
        let back: Value = serde_yaml::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("unreadable: {e}\n{text}")))?;
        prop_assert_eq!(&back, &value, "read back differently:\n{}", text);
        prop_assert!(text.ends_with('\n'));
        prop_assert_eq!(yaml::to_string(&value.clone()), text);
    }
}

/// Compares strictly by type, since Python holds `1 == 1.0 == True`.
const PYYAML_CHECK: &str = "\
import json, sys, yaml
def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b
for text, expected in json.load(sys.stdin):
    loaded = yaml.safe_load(text)
    if not same(loaded, json.loads(expected)):
        sys.exit('PyYAML read back %r\\nfrom:\\n%s' % (loaded, text))
";

/// Checks that PyYAML (YAML 1.1) loads each value's YAML back as exactly that value. The
/// comparison runs in Python: its JSON parser rounds floats correctly, serde_json's may not.
fn assert_pyyaml_reads_back(values: &[Value]) {
    let probe = Command::new("python3").args(["-c", "import yaml"]).output();
    if !probe.is_ok_and(|out| out.status.success()) {
        println!("skipped: PyYAML not installed");
        return;
    }
    let pairs: Vec<(String, String)> = values
        .iter()
        .map(|v| (yaml::to_string(v), v.to_string()))
        .collect();
    let mut child = Command::new("python3")
        .args(["-c", PYYAML_CHECK])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let input = serde_json::to_vec(&pairs).expect("strings serialize");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(&input)
        .expect("python3 reads stdin");
    let out = child.wait_with_output().expect("python3 finishes");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pyyaml_reads_ambiguous_strings_as_strings() {
    let mut data = Map::new();
    for (i, &s) in TRICKY.iter().enumerate() {
        data.insert(s.to_owned(), json!(s));
        data.insert(format!("value-{i:03}"), json!(s));
    }
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "tricky", "labels": {"app.kubernetes.io/name": "yes"}},
        "data": data,
        "list": TRICKY,
        "nested": [[TRICKY], {"k": TRICKY}],
    });
    assert_pyyaml_reads_back(&[config_map]);
}

#[test]
fn pyyaml_reads_generated_values_back() {
    let mut runner = TestRunner::deterministic();
    let strategy = json_value();
    let values: Vec<Value> = (0..400)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("a value generates")
                .current()
        })
        .collect();
    let long_key = "k".repeat(1500);
    let mut extra = vec![
        json!({ long_key.clone(): {"a": [1, " x\ny"]}, "b": [{ long_key: "v" }] }),
        json!([1e100, -2.5e-7, 5e-324, -0.0, u64::MAX, i64::MIN]),
    ];
    extra.extend(values);
    assert_pyyaml_reads_back(&extra);
}
