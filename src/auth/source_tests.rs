//! Unit tests of credential sources: schemes, queries, cookies, JSON bodies.
use super::*;

fn parts<'a>(h: &'a HeaderMap, q: Option<&'a str>) -> RequestParts<'a> {
    RequestParts {
        headers: h,
        query: q,
        params: &[],
        socketio_auth: None,
        max_token_bytes: 64,
        method: &Method::GET,
        body: None,
    }
}

fn src(yaml: &str) -> Sources {
    let cfg: crate::config::Sources = crate::config::yaml::from_str(yaml, "test").unwrap();
    Sources::compile(&cfg.0, "from").unwrap()
}

#[test]
fn header_scheme_is_case_insensitive_and_needs_one_space() {
    let s = src("[{header: Authorization, scheme: Bearer}]");
    let mut h = HeaderMap::new();
    h.insert("authorization", "bEaReR tok".parse().unwrap());
    assert_eq!(
        s.extract(&parts(&h, None)),
        Extracted::Present("tok".into())
    );
    h.insert("authorization", "Bearer  tok".parse().unwrap());
    assert_eq!(s.extract(&parts(&h, None)), Extracted::Malformed);
    h.insert("authorization", "Basic abc".parse().unwrap());
    assert_eq!(s.extract(&parts(&h, None)), Extracted::Absent);
    h.append("authorization", "Bearer x".parse().unwrap());
    assert_eq!(s.extract(&parts(&h, None)), Extracted::Malformed);
}

#[test]
fn query_tolerates_empty_segments_and_refuses_duplicates() {
    let s = src("[{header: x-t}, {query: api_key}]");
    let h = HeaderMap::new();
    let q = Some("user_token=a&api_key=pk%5F1&&vsn=2.0.0");
    assert_eq!(s.extract(&parts(&h, q)), Extracted::Present("pk_1".into()));
    assert_eq!(
        s.extract(&parts(&h, Some("?&api_key=a&api_key=b"))),
        Extracted::Malformed
    );
    assert_eq!(
        s.extract(&parts(&h, Some("api_key="))),
        Extracted::Malformed
    );
    let long = format!("api_key={}", "a".repeat(65));
    assert_eq!(s.extract(&parts(&h, Some(&long))), Extracted::Malformed);
}

#[test]
fn json_body_reads_a_string_member_only() {
    let s = src("[{json_body: /subscriberHash}]");
    let h = HeaderMap::new();
    let read = |body: serde_json::Value| {
        let mut p = parts(&h, None);
        p.body = Some(&body);
        match s.extract(&p) {
            Extracted::Present(v) => Ok(v.into_owned()),
            other => Err(format!("{other:?}")),
        }
    };
    assert_eq!(
        read(serde_json::json!({"subscriberHash": "ab12"})),
        Ok("ab12".into())
    );
    assert_eq!(read(serde_json::json!({})), Err("Absent".into()));
    assert_eq!(
        read(serde_json::json!({"subscriberHash": 7})),
        Err("Malformed".into())
    );
    assert_eq!(
        read(serde_json::json!({"subscriberHash": ""})),
        Err("Malformed".into())
    );
    assert_eq!(
        s.extract(&parts(&h, None)),
        Extracted::Absent,
        "no body read"
    );
    let bad: crate::config::Sources =
        crate::config::yaml::from_str("{json_body: /ids/*}", "test").unwrap();
    assert!(Sources::compile(&bad.0, "from").is_err());
    let bad: crate::config::Sources =
        crate::config::yaml::from_str("{json_body: nope}", "test").unwrap();
    assert!(Sources::compile(&bad.0, "from").is_err());
}

#[test]
fn cookie_is_found_among_others() {
    let s = src("{cookie: session}");
    let mut h = HeaderMap::new();
    h.insert(COOKIE, "a=1; session=xyz; b=2".parse().unwrap());
    assert_eq!(
        s.extract(&parts(&h, None)),
        Extracted::Present("xyz".into())
    );
}
