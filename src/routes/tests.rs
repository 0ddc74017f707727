//! Route table tests: specificity, case and trailing-slash folding, 405, overlaps.
use super::*;
use crate::path::check;

fn table(yaml: &str) -> RouteTable {
    let cfg: Vec<RouteConfig> = crate::config::yaml::from_str(yaml, "test").unwrap();
    RouteTable::compile(&cfg, &HashMap::new(), &[]).unwrap()
}

fn name(t: &RouteTable, method: &str, p: &str) -> String {
    let path = check(p).unwrap();
    match t.find(&path, &Method::from_bytes(method.as_bytes()).unwrap()) {
        Lookup::Matched(m) => t.routes[m.route].name.to_string(),
        Lookup::MethodNotAllowed { allow, .. } => format!("405 {allow}"),
        Lookup::NotFound => "none".into(),
    }
}

#[test]
fn specific_wins_case_and_trailing_slash_fold() {
    let t = table(
        "- {name: sio, path: '/s/{*rest}', auth: anonymous}\n- {name: u, path: '/u/{id}', auth: anonymous}\n- {name: me, path: '/U/Me/', auth: anonymous}\n- {name: root, path: '/', auth: anonymous}\n",
    );
    for (p, want) in [
        ("/s/", "sio"),
        ("/s", "sio"),
        ("/S/x/y", "sio"),
        ("/u/me", "me"),
        ("/u/ME/", "me"),
        ("/u/42", "u"),
        ("/u/42/", "u"),
        ("/", "root"),
        ("/u", "none"),
    ] {
        assert_eq!(name(&t, "GET", p), want, "{p}");
    }
    let path = check("/U/AbC/").unwrap();
    let Lookup::Matched(m) = t.find(&path, &Method::GET) else {
        panic!()
    };
    assert_eq!(
        m.params,
        vec![("id".to_string(), "AbC".to_string())],
        "case kept"
    );
}

#[test]
fn wrong_method_is_405_never_another_route() {
    let t = table(
        "- {name: get, path: '/a/{x}', methods: [GET], auth: anonymous}\n- {name: post, path: '/a/{y}', methods: [post], auth: anonymous}\n- {name: any, path: '/{*rest}', auth: anonymous}\n",
    );
    assert_eq!(name(&t, "GET", "/a/1"), "get");
    assert_eq!(name(&t, "HEAD", "/A/1"), "get", "HEAD is GET");
    assert_eq!(name(&t, "POST", "/a/1"), "post");
    assert_eq!(name(&t, "DELETE", "/a/1"), "405 GET, HEAD, POST");
    assert_eq!(
        name(&t, "get", "/a/1"),
        "405 GET, HEAD, POST",
        "methods are case-sensitive"
    );
    assert_eq!(name(&t, "DELETE", "/b"), "any");
}

#[test]
fn overlapping_routes_are_refused() {
    let refused = |yaml: &str| {
        let cfg: Vec<RouteConfig> = crate::config::yaml::from_str(yaml, "test").unwrap();
        RouteTable::compile(&cfg, &HashMap::new(), &[])
            .err()
            .unwrap()
    };
    let e = refused(
        "- {name: a, path: '/u/{id}', auth: anonymous}\n- {name: b, path: '/u/{other}', methods: [GET], auth: anonymous}\n",
    );
    assert_eq!(e.path, "routes[1].path");
    assert!(e.message.contains("overlaps route `a`"), "{}", e.message);
    // Case and a trailing slash do not make two templates different.
    let e = refused(
        "- {name: a, path: '/Admin', auth: anonymous}\n- {name: b, path: '/admin/', auth: anonymous}\n",
    );
    assert!(e.message.contains("overlaps"), "{}", e.message);
    let e = refused(
        "- {name: a, path: '/v1/events', auth: anonymous}\n- {name: b, path: '/v1/events/{*rest}', auth: anonymous}\n",
    );
    assert!(e.message.contains("overlaps"), "{}", e.message);
    table(
        "- {name: a, path: '/u/{id}', methods: [POST], auth: anonymous}\n- {name: b, path: '/u/{other}', methods: [GET], auth: anonymous}\n",
    );
}
