//! The one YAML path: positions, bounds, schemas and serde errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use rookery_yaml::{Error, Schema, from_str, parse, parse_all};
use serde::Deserialize;
use serde_json::json;

fn p() -> &'static Path {
    Path::new("f.yaml")
}

fn parse_err(text: &str) -> String {
    parse(text, p(), Schema::Yaml11).unwrap_err().to_string()
}

/// A "billion laughs" document: each level names the previous one ten times.
fn laughs(levels: usize) -> String {
    let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..levels {
        let p = i - 1;
        s.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    s
}

#[test]
fn billion_laughs_is_a_located_error() {
    let text = laughs(9);
    let e = parse_err(&text);
    assert!(e.starts_with("f.yaml:"), "{e}");
    assert!(
        e.contains("aliases expand to more than 1000000 nodes"),
        "{e}"
    );
    // Small, legitimate aliasing still works.
    let v = parse(&laughs(3), p(), Schema::Yaml11)
        .unwrap()
        .unwrap()
        .to_json();
    assert_eq!(v["a2"].as_array().unwrap().len(), 10);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // The parser's own limit catches deep flow collections...
    let text = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = parse_err(&text);
    assert!(e.contains("recursion limit exceeded"), "{e}");
    // ...and ours, block ones (each level one `- ` deeper).
    let text: String = (0..200).map(|i| format!("{}-\n", "  ".repeat(i))).collect();
    let e = parse_err(&text);
    assert!(e.contains("nested deeper than 128 levels"), "{e}");
    let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(parse(&ok, p(), Schema::Yaml11).is_ok());
    // Aliases cannot stack depth either.
    let mut s = format!("a0: &a0 {}1{}\n", "[".repeat(100), "]".repeat(100));
    for i in 1..50 {
        s.push_str(&format!("a{i}: &a{i} [[*a{}]]\n", i - 1));
    }
    assert!(parse_err(&s).contains("nested deeper"));
}

#[test]
fn syntax_errors_are_located_with_a_snippet() {
    let e = parse_err("a: 1\nb: [1, 2\nc: 3\n");
    assert!(e.starts_with("f.yaml:"), "{e}");
    assert!(e.contains("YAML syntax error"), "{e}");
    assert!(e.contains(" | "), "{e}");
    let e = parse_err("a: *nope\n");
    assert!(e.starts_with("f.yaml:1:4: "), "{e}");
    assert!(e.contains("unknown anchor"), "{e}");
}

#[test]
fn a_second_document_is_refused_where_one_is_expected() {
    let e = parse_err("a: 1\n---\nb: 2\n");
    assert!(e.starts_with("f.yaml:2:1:"), "{e}");
    assert!(e.contains("second YAML document"), "{e}");
    let docs = parse_all("a: 1\n---\nb: 2\n---\n", p(), Schema::Core).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1].to_json(), json!({"b": 2}));
    assert!(parse("", p(), Schema::Core).unwrap().is_none());
}

#[test]
fn schemas_differ_only_where_the_formats_do() {
    let text = "a: yes\nb: 0755\nc: 'yes'\nd: 1.5\n";
    let y11 = parse(text, p(), Schema::Yaml11).unwrap().unwrap().to_json();
    assert_eq!(y11, json!({"a": true, "b": 493, "c": "yes", "d": 1.5}));
    let core = parse(text, p(), Schema::Core).unwrap().unwrap().to_json();
    assert_eq!(core, json!({"a": "yes", "b": "0755", "c": "yes", "d": 1.5}));
}

#[test]
fn merge_keys_apply() {
    let v = parse(
        "d: &d {a: 1, b: 2}\ne:\n  <<: *d\n  b: 3\n",
        p(),
        Schema::Core,
    )
    .unwrap()
    .unwrap()
    .to_json();
    assert_eq!(v["e"], json!({"a": 1, "b": 3}));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // only deserialized
struct Top {
    name: String,
    #[serde(default)]
    nodes: Vec<NodeSpec>,
    #[serde(default)]
    mode: Option<Mode>,
    #[serde(default)]
    extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // only deserialized
struct NodeSpec {
    name: String,
    #[serde(default)]
    size: u32,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Fast,
    Safe,
}

fn de_err(text: &str) -> (usize, usize, String, String) {
    match from_str::<Top>(text, p(), Schema::Core).unwrap_err() {
        Error::Parse {
            location,
            key_path,
            detail,
            ..
        } => (location.line, location.col, key_path, detail),
        other => panic!("{other:?}"),
    }
}

#[test]
fn serde_errors_name_the_node_and_its_path() {
    let ok: Top = from_str(
        "name: 1.20\nnodes:\n  - name: a\n    size: 3\nmode: safe\nextra: {x: yes}\n",
        p(),
        Schema::Core,
    )
    .unwrap();
    // A string field takes the scalar's text, as serde_yaml did.
    assert_eq!(ok.name, "1.20");
    assert_eq!(ok.mode, Some(Mode::Safe));
    assert_eq!(ok.extra["x"], json!("yes"));

    // `nodes:` with nothing after it is an empty list, as serde_yaml read it.
    let empty: Top = from_str("name: a\nnodes:\nextra:\n", p(), Schema::Core).unwrap();
    assert!(empty.nodes.is_empty() && empty.extra.is_empty());
    let (line, _, path, detail) = de_err("name: a\nnodes: ~\n");
    assert_eq!((line, path.as_str()), (2, "nodes"));
    assert!(detail.starts_with("invalid type: unit value"), "{detail}");

    let (line, col, path, detail) = de_err("name: a\nnodes:\n  - name: a\n    sise: 3\n");
    assert_eq!((line, col), (4, 5));
    assert_eq!(path, "nodes[0].sise");
    assert!(detail.starts_with("unknown field `sise`"), "{detail}");

    let (line, col, path, detail) = de_err("name: a\nnodes:\n  - name: a\n    size: three\n");
    assert_eq!((line, col, path.as_str()), (4, 11, "nodes[0].size"));
    assert_eq!(detail, "invalid type: string \"three\", expected u32");

    let (line, _, path, detail) = de_err("name: a\nmode: slow\n");
    assert_eq!((line, path.as_str()), (2, "mode"));
    assert!(detail.contains("unknown variant `slow`"), "{detail}");

    let (line, col, path, detail) = de_err("nodes: []\n");
    assert_eq!((line, col, path.as_str()), (1, 1, ""));
    assert_eq!(detail, "missing field `name`");

    let (line, _, path, detail) = de_err("name: a\nname: b\n");
    assert_eq!((line, path.as_str()), (2, "name"));
    assert_eq!(detail, "duplicate key `name`");

    let msg = from_str::<Top>("name: a\nnodes: {a: 1}\n", p(), Schema::Core)
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "f.yaml:2:8: nodes: invalid type: map, expected a sequence\n  |\n2 | nodes: {a: 1}\n  |        ^"
    );
}

#[test]
fn snippets_mask_secret_values() {
    let e = parse_err("x: [\nansible_become_pass: hunter2\n");
    assert!(!e.contains("hunter2"), "{e}");
    let s = rookery_yaml::snippet("ansible_become_pass: hunter2", 1, 1);
    assert!(s.contains("<redacted>") && !s.contains("hunter2"), "{s}");
}
