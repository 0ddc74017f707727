//! Unit and property tests of `json_body`: the strict parse and JSON Pointers with `*`.

use super::*;
use proptest::prelude::*;
use serde_json::json;

#[test]
fn parse_refuses_repeated_members_trailing_data_and_non_json() {
    assert_eq!(
        parse(br#"{"a":[1,{"b":"c"}]}"#).unwrap(),
        json!({"a":[1,{"b":"c"}]})
    );
    assert!(parse(br#"{"user_ids":["me"],"user_ids":["victim"]}"#).is_err());
    assert!(parse(br#"{"a":{"x":1,"x":2}}"#).is_err());
    assert!(parse(br#"{"a":1} {"a":2}"#).is_err());
    assert!(parse(b"user_ids=me").is_err());
    assert!(parse(b"\xef\xbb\xbf{}").is_err(), "a BOM is not JSON");
    assert!(parse(b"").is_err());
    let deep = "[".repeat(200) + &"]".repeat(200);
    assert!(parse(deep.as_bytes()).is_err(), "nesting is bounded");
    assert!(
        parse(br#""\ud800""#).is_err(),
        "a lone surrogate is refused"
    );
}

#[test]
fn pointers_parse_escapes_and_refuse_bad_ones() {
    let p = Pointer::parse("/a~1b/~0c/*/0").unwrap();
    assert_eq!(
        p.tokens(),
        &[
            Token::Key("a/b".into()),
            Token::Key("~c".into()),
            Token::Every,
            Token::Key("0".into())
        ]
    );
    assert!(p.has_every());
    assert!(Pointer::parse("user_ids").is_err());
    assert!(Pointer::parse("/a~2").is_err());
    assert!(Pointer::parse("/a~").is_err());
    assert!(Pointer::parse("").unwrap().tokens().is_empty());
}

#[test]
fn select_every_item_and_refuse_missing_steps() {
    let doc = json!({"user_ids": ["u1", "u2"], "nested": [{"id": "u1"}, {"id": "u3"}], "s": "x"});
    let sel = |p: &str| Pointer::parse(p).unwrap().select(&doc);
    assert_eq!(
        sel("/user_ids/*").unwrap(),
        vec![&json!("u1"), &json!("u2")]
    );
    assert_eq!(
        sel("/nested/*/id").unwrap(),
        vec![&json!("u1"), &json!("u3")]
    );
    assert_eq!(sel("/user_ids/1").unwrap(), vec![&json!("u2")]);
    assert!(sel("/missing/*").is_none());
    assert!(sel("/s/*").is_none(), "* over a string");
    assert!(sel("/nested/*/nope").is_none(), "one item lacks the member");
    assert!(
        sel("/user_ids/01").is_none(),
        "leading zero is not an index"
    );
    assert!(sel("/user_ids/2").is_none());
    assert_eq!(
        Pointer::parse("/e/*")
            .unwrap()
            .select(&json!({"e": []}))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn all_equal_is_strict_about_type_and_presence() {
    let ps = [Pointer::parse("/user_ids/*").unwrap()];
    assert!(all_equal(&ps, &json!({"user_ids": ["me", "me"]}), "me"));
    assert!(!all_equal(
        &ps,
        &json!({"user_ids": ["me", "victim"]}),
        "me"
    ));
    assert!(!all_equal(&ps, &json!({"user_ids": "me"}), "me"));
    assert!(!all_equal(&ps, &json!({}), "me"));
    assert!(!all_equal(
        &[Pointer::parse("/n").unwrap()],
        &json!({"n": 7}),
        "7"
    ));
}

/// Arbitrary JSON values of bounded depth.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z~/*0-9]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z~/*0-9]{0,4}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The RFC 6901 spelling of one member name.
fn escape(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// Every pointer without `*` that exists in `doc`, with its value.
fn paths(doc: &Value, prefix: String, out: &mut Vec<(String, Value)>) {
    out.push((prefix.clone(), doc.clone()));
    match doc {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| paths(v, format!("{prefix}/{}", escape(k)), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| paths(v, format!("{prefix}/{i}"), out)),
        _ => {}
    }
}

proptest! {
    /// Without `*`, selection is exactly serde_json's own RFC 6901 `Value::pointer` (the
    /// reference), for pointers that exist and for arbitrary ones.
    #[test]
    fn without_every_it_agrees_with_serde_json(doc in json_value(), junk in "(/[a-z0-9~]{0,3}){0,4}") {
        let mut all = Vec::new();
        paths(&doc, String::new(), &mut all);
        for (p, v) in &all {
            if p.split('/').any(|t| t == "*") { continue; }
            let ptr = Pointer::parse(p).unwrap();
            prop_assert_eq!(ptr.get(&doc), Some(v));
            prop_assert_eq!(ptr.select(&doc), Some(vec![v]));
        }
        if let Ok(ptr) = Pointer::parse(&junk) {
            if !ptr.has_every() {
                prop_assert_eq!(ptr.get(&doc), doc.pointer(&junk));
            }
        }
    }

    /// `/list/*/id` selects each item's `id`, in order, and fails when one item lacks it.
    #[test]
    fn every_selects_each_item(ids in prop::collection::vec(prop::option::of("[a-z]{1,5}"), 0..8)) {
        let items: Vec<Value> = ids.iter().map(|i| match i {
            Some(id) => json!({"id": id}),
            None => json!({"other": 1}),
        }).collect();
        let doc = json!({"list": items});
        let got = Pointer::parse("/list/*/id").unwrap().select(&doc);
        if ids.iter().all(Option::is_some) {
            let want: Vec<Value> = ids.iter().flatten().map(|s| json!(s)).collect();
            prop_assert_eq!(got.unwrap().into_iter().cloned().collect::<Vec<_>>(), want);
        } else {
            prop_assert!(got.is_none());
        }
    }

    /// `bind_json` holds exactly when every listed id is the user's.
    #[test]
    fn all_equal_iff_every_id_is_the_user(ids in prop::collection::vec("(me|you)", 0..6)) {
        let doc = json!({"user_ids": ids});
        let ps = [Pointer::parse("/user_ids/*").unwrap()];
        prop_assert_eq!(all_equal(&ps, &doc, "me"), ids.iter().all(|i| i == "me"));
    }

    /// The parser never panics, and whatever it accepts serde_json accepts as the same value.
    #[test]
    fn strict_parse_is_serde_json_without_duplicates(bytes in prop::collection::vec(any::<u8>(), 0..64), doc in json_value()) {
        if let Ok(v) = parse(&bytes) {
            prop_assert_eq!(Some(v), serde_json::from_slice::<Value>(&bytes).ok());
        }
        let text = serde_json::to_vec(&doc).unwrap();
        prop_assert_eq!(parse(&text).unwrap(), doc);
    }
}
