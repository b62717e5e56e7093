use std::path::Path;

use super::*;

fn doc(text: &str) -> Node {
    load(text, None).unwrap_or_else(|e| panic!("{text:?}: {e} at {:?}", e.pos()))
}

fn err(text: &str) -> Error {
    load(text, None).expect_err(text)
}

fn at(node: &Node) -> (usize, usize) {
    (node.pos.line, node.pos.column)
}

fn item(node: &Node, i: usize) -> &Node {
    &node.as_seq().expect("a sequence")[i]
}

fn key<'a>(node: &'a Node, k: &str) -> &'a Node {
    node.as_map().expect("a mapping").entry(k).expect(k).0
}

fn val<'a>(node: &'a Node, k: &str) -> &'a Node {
    node.as_map().expect("a mapping").get(k).expect(k)
}

const BLOCK: &str = "\
# a comment
- name: first
  shards: all
  shard_info:
    reqsize: 4kB

    think_time: 0

-
  name: second
  type: cpu
";

#[test]
fn block_positions_are_those_serde_yaml_reported() {
    let d = doc(BLOCK);
    assert_eq!(d.pos.line, 2, "the list starts at its first dash");
    assert_eq!(item(&d, 0).pos.line, 2);
    assert_eq!(at(key(item(&d, 0), "name")), (2, 3));
    assert_eq!(key(item(&d, 0), "shard_info").pos.line, 4);
    assert_eq!(
        key(val(item(&d, 0), "shard_info"), "think_time").pos.line,
        7
    );
    assert_eq!(key(item(&d, 1), "type").pos.line, 11);
    // The element starts at its first key when the dash stands alone.
    assert_eq!(item(&d, 1).pos.line, 10);
}

#[test]
fn flow_style_and_multiline_scalars() {
    let text = "- {name: a, type: cpu,\n   shards: [0,\n     1]}\n- name: |\n    long\n    text\n  type: seqread\n";
    let d = doc(text);
    assert_eq!(key(item(&d, 0), "type").pos.line, 1);
    assert_eq!(item(val(item(&d, 0), "shards"), 1).pos.line, 3);
    assert_eq!(key(item(&d, 1), "type").pos.line, 7);
    assert_eq!(val(item(&d, 1), "name").as_str(), Some("long\ntext\n"));
}

#[test]
fn scalars_resolve_as_serde_yaml_ng_did() {
    let d = doc("[~, null, '', true, False, 12, -3, 0x1f, 0o17, 0b101, +7, 007, 1.5, 1e3, .inf, -.INF, .nan, abc, '12', \"true\", yes, 99999999999999999999, 1_000]");
    let v: Vec<&Value> = d.as_seq().unwrap().iter().map(|n| &n.value).collect();
    assert_eq!(v[0], &Value::Null);
    assert_eq!(v[1], &Value::Null);
    assert_eq!(v[2], &Value::String(String::new()));
    assert_eq!(v[3], &Value::Bool(true));
    assert_eq!(v[4], &Value::Bool(false));
    assert_eq!(v[5], &Value::Int(12, "12".into()));
    assert_eq!(v[6], &Value::Int(-3, "-3".into()));
    assert_eq!(v[7], &Value::Int(31, "0x1f".into()));
    assert_eq!(v[8], &Value::Int(15, "0o17".into()));
    assert_eq!(v[9], &Value::Int(5, "0b101".into()));
    assert_eq!(v[10], &Value::Int(7, "+7".into()));
    assert_eq!(v[11], &Value::String("007".into()));
    assert_eq!(v[12], &Value::Float(1.5, "1.5".into()));
    assert_eq!(v[13], &Value::Float(1000.0, "1e3".into()));
    assert!(matches!(v[14], Value::Float(f, _) if *f == f64::INFINITY));
    assert!(matches!(v[15], Value::Float(f, _) if *f == f64::NEG_INFINITY));
    assert!(matches!(v[16], Value::Float(f, _) if f.is_nan()));
    assert_eq!(v[17], &Value::String("abc".into()));
    assert_eq!(v[18], &Value::String("12".into()));
    assert_eq!(v[19], &Value::String("true".into()));
    assert_eq!(v[20], &Value::String("yes".into()));
    assert_eq!(
        v[21],
        &Value::Int(99_999_999_999_999_999_999, "99999999999999999999".into())
    );
    assert_eq!(v[22], &Value::String("1_000".into()));
    assert_eq!(doc("").value, Value::Null);
    assert_eq!(doc("# only a comment\n").value, Value::Null);
}

#[test]
fn tags() {
    let d = doc("[!!str 12, !!int '7', !x 5, !!float 1, !y {a: 1}]");
    let v = d.as_seq().unwrap();
    assert_eq!(v[0].value, Value::String("12".into()));
    assert_eq!(v[1].value, Value::Int(7, "7".into()));
    assert!(
        matches!(&v[2].value, Value::Tagged(t, inner) if t == "!x" && inner.value == Value::Int(5, "5".into()))
    );
    assert_eq!(v[3].value, Value::Float(1.0, "1".into()));
    assert!(
        matches!(&v[4].value, Value::Tagged(t, inner) if t == "!y" && inner.as_map().is_some())
    );
    let e = err("- !!int x\n");
    assert!(matches!(e, Error::BadTaggedScalar { .. }), "{e:?}");
    assert_eq!(e.to_string(), "`x` is not a valid integer (tagged `!!int`)");
}

#[test]
fn duplicate_keys_point_at_the_repeated_key() {
    let e = err("- name: a\n  type: x\n  name: b\n");
    assert_eq!(e.to_string(), "duplicate entry with key \"name\"");
    assert_eq!(e.pos(), Some(Pos { line: 3, column: 3 }));
    let e = err("- a: {x: 1, y: {x: 2}}\n- {x: 1, y: 2, y: 3}\n");
    assert_eq!(
        e.pos(),
        Some(Pos {
            line: 2,
            column: 16
        })
    );
    // Keys are compared as values, as serde_yaml_ng did: 1 and 0x1 are the same.
    assert_eq!(
        err("{1: a, 0x1: b}").to_string(),
        "duplicate entry with key 0x1"
    );
    assert_eq!(
        err("{~: a, null: b}").to_string(),
        "duplicate entry with null key"
    );
    assert_eq!(
        err("{[1]: a, [1]: b}").to_string(),
        "duplicate entry in YAML map"
    );
    doc("{'1': a, 1: b, [1]: c, [2]: d}");
}

#[test]
fn merge_keys_expand_and_keep_positions_of_the_anchor() {
    let text = "\
- &base
  name: a
  type: randread
  shard_info: {reqsize: 8kB}
- <<: *base
  name: b
- <<: [{x: 1}, {x: 2, y: 3}]
  y: 0
";
    let d = doc(text);
    let b = item(&d, 1);
    assert_eq!(b.pos.line, 5);
    assert_eq!(val(b, "name").as_str(), Some("b"), "own keys win");
    assert_eq!(val(b, "type").as_str(), Some("randread"));
    assert!(val(b, "type").aliased && key(b, "type").aliased);
    assert_eq!(key(b, "type").pos.line, 3, "where the anchored text has it");
    assert!(!key(b, "name").aliased);
    assert!(!b.as_map().unwrap().contains_key("<<"));
    let c = item(&d, 2);
    assert_eq!(val(c, "x").value, Value::Int(1, "1".into()));
    assert_eq!(val(c, "y").value, Value::Int(0, "0".into()));
    // The anchored job itself is untouched.
    assert!(!item(&d, 0).aliased && !key(item(&d, 0), "type").aliased);

    let e = err("- a: 1\n  <<: 3\n");
    assert!(
        matches!(
            e,
            Error::Merge {
                pos: Pos { line: 2, column: 3 },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("found scalar"), "{e}");
    assert!(err("{<<: [[1]]}").to_string().contains("found sequence"));
}

#[test]
fn merges_nest() {
    let d = doc("- &a {x: 1}\n- &b {<<: *a, y: 2}\n- {<<: *b, z: 3}\n");
    let c = item(&d, 2).as_map().unwrap();
    let keys: Vec<&str> = c.keys().filter_map(Node::as_str).collect();
    assert_eq!(keys, ["z", "y", "x"]);
}

#[test]
fn aliases_take_the_alias_position() {
    let d = doc("- &s [1, 2]\n- *s\n- &n 5\n- *n\n");
    let copy = item(&d, 1);
    assert_eq!((copy.pos.line, copy.aliased), (2, false));
    assert_eq!(copy.as_seq().unwrap().len(), 2);
    assert!(item(copy, 0).aliased);
    assert_eq!(item(&d, 3).value, Value::Int(5, "5".into()));
    assert_eq!(item(&d, 3).pos.line, 4);
    // An alias inside an anchored node, replayed through another alias.
    let d = doc("- &a [1]\n- &b [*a, *a]\n- *b\n");
    assert_eq!(item(item(&d, 2), 1).as_seq().unwrap().len(), 1);
}

#[test]
fn billion_laughs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let e = err(&text);
    assert!(matches!(e, Error::AliasBudget { .. }), "{e:?}");
}

#[test]
fn recursive_alias_is_refused() {
    let e = load("&a [1, *a]", None).unwrap_err();
    assert!(
        matches!(e, Error::RecursiveAlias { .. } | Error::Syntax { .. }),
        "{e:?}"
    );
}

#[test]
fn depth_is_bounded() {
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert!(matches!(err(&deep), Error::TooDeep { .. }));
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    doc(&ok);
    // Very deep input stops at the limit, without recursion in the parser or on drop.
    let very = "[".repeat(1_000_000);
    assert!(load(&very, None).is_err());
}

#[test]
fn one_document_only() {
    let e = err("- a\n---\n- b\n");
    assert!(
        matches!(
            e,
            Error::MultipleDocuments {
                pos: Pos { line: 2, .. }
            }
        ),
        "{e:?}"
    );
    doc("---\n- a\n...\n");
}

#[test]
fn syntax_errors_have_positions() {
    let e = err("- name: a\n  type: [cpu\n");
    assert!(matches!(e, Error::Syntax { .. }), "{e:?}");
    assert!(e.pos().is_some_and(|p| p.line >= 2), "{e:?}");
}

#[test]
fn tab_errors_point_at_the_tab() {
    // The parser reports where the scalar it was scanning starts (line 2, column 9).
    let e = err("- name: a\n  type: cpu\n\tshards: all\n");
    assert_eq!(e.pos(), Some(Pos { line: 3, column: 1 }), "{e}");
    // Unlike libyaml, saphyr-parser refuses a tab alone between `:` and a plain value; it
    // points at the value.
    let e = err("- name:\tfoo\n");
    assert_eq!(e.pos(), Some(Pos { line: 1, column: 9 }), "{e}");
}

#[test]
fn a_set_stop_flag_interrupts_loading() {
    let text = "- 1\n".repeat(100_000);
    let stop = AtomicBool::new(true);
    assert_eq!(load(&text, Some(&stop)), Err(Error::Interrupted));
    stop.store(false, Ordering::Relaxed);
    assert_eq!(
        load(&text, Some(&stop)).unwrap().as_seq().unwrap().len(),
        100_000
    );
}

/// The scanner reads a whole flow collection before its first event; the stop flag is read
/// while it scans, too.
#[test]
fn a_set_stop_flag_interrupts_a_long_flow_collection() {
    let text = format!("[{}]", "1, ".repeat(1_000_000));
    let stop = AtomicBool::new(true);
    assert_eq!(load(&text, Some(&stop)), Err(Error::Interrupted));
    let text = format!("{{k: [{}]}}", "1, ".repeat(1_000_000));
    assert_eq!(load(&text, Some(&stop)), Err(Error::Interrupted));
    // What the scanner is given ends within STOP_CHECK_CHARS characters of the flag.
    let given = StopChars {
        chars: text.chars(),
        stop: Some(&stop),
        countdown: STOP_CHECK_CHARS,
        stopped: false,
    };
    assert_eq!(given.count(), STOP_CHECK_CHARS - 1);
    let unset = AtomicBool::new(false);
    let given = StopChars {
        chars: text.chars(),
        stop: Some(&unset),
        countdown: STOP_CHECK_CHARS,
        stopped: false,
    };
    assert_eq!(given.count(), text.chars().count());
}

#[test]
fn loads_are_counted() {
    let before = loads_on_this_thread();
    doc("[1]");
    doc("[2]");
    assert_eq!(loads_on_this_thread(), before + 2);
}

#[test]
fn read_file_refuses_what_is_too_large() {
    let dir = std::env::temp_dir().join(format!("yaml-tree-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f.yaml");
    std::fs::write(&path, "x".repeat(100)).unwrap();
    assert_eq!(read_file(&path, 100).unwrap().len(), 100);
    let e = read_file(&path, 99).unwrap_err();
    assert!(
        matches!(
            e,
            ReadError::TooLarge {
                size: Some(100),
                limit: 99
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "the file has 100 bytes (0.0 MiB), more than the 99-byte limit"
    );
    let e = read_file(Path::new("/dev/zero"), 1 << 20).unwrap_err();
    assert_eq!(e.to_string(), "the file has more than the 1 MiB limit");
    std::fs::write(&path, [0xff, 0xfe]).unwrap();
    assert!(read_file(&path, 100)
        .unwrap_err()
        .to_string()
        .contains("valid UTF-8"));
    assert!(matches!(
        read_file(&dir.join("missing"), 100),
        Err(ReadError::Io(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn controls_are_escaped() {
    assert_eq!(escape_controls("plain"), "plain");
    assert_eq!(escape_controls("a\0b\x1b[1m\n"), "a\\u{0}b\\u{1b}[1m\\n");
}

#[test]
fn crlf_lines_and_a_byte_order_mark() {
    let d = doc("\u{feff}- a: 1\r\n\r\n- b: 2\r\n  c: 3\r\n");
    assert_eq!(item(&d, 1).pos.line, 3);
    assert_eq!(key(item(&d, 1), "c").pos.line, 4);
}
