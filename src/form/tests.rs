use super::*;
use http::Method;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    h
}

fn of(content_type: &str, body: &str) -> Result<Option<Method>, Reason> {
    let form = kind(&headers(&[("content-type", content_type)]))?.expect("a form type");
    let mut found = Overrides::default();
    note_overrides(&form, body.as_bytes(), &mut found)?;
    Ok(found.0)
}

const MP: &str = "multipart/form-data; boundary=XyZ";

fn part(disposition: &str, value: &str) -> String {
    format!("--XyZ\r\nContent-Disposition: form-data; {disposition}\r\n\r\n{value}\r\n")
}

#[test]
fn form_types_are_told_by_content_type_and_encoding() {
    let k = |pairs: &[(&str, &str)]| kind(&headers(pairs));
    let url = "application/x-www-form-urlencoded";
    assert_eq!(k(&[("content-type", url)]), Ok(Some(Form::Urlencoded)));
    assert_eq!(
        k(&[(
            "content-type",
            "Application/X-WWW-Form-Urlencoded; charset=utf-8"
        )]),
        Ok(Some(Form::Urlencoded))
    );
    assert_eq!(
        k(&[("content-type", MP)]),
        Ok(Some(Form::Multipart("XyZ".into())))
    );
    assert_eq!(
        k(&[("content-type", "multipart/mixed; boundary=\"a b\"")]),
        Ok(Some(Form::Multipart("a b".into())))
    );
    assert_eq!(k(&[]), Ok(None));
    assert_eq!(k(&[("content-type", "application/json")]), Ok(None));
    assert_eq!(k(&[("content-type", "text/plain")]), Ok(None));
    // A form beside another type, a compressed form, a multipart body without a boundary.
    assert_eq!(
        k(&[("content-type", "application/json"), ("content-type", url)]),
        Err(Reason::MalformedRequest)
    );
    assert_eq!(
        k(&[("content-type", url), ("content-encoding", "gzip")]),
        Err(Reason::MalformedBody)
    );
    assert_eq!(
        k(&[("content-type", url), ("content-encoding", "identity")]),
        Ok(Some(Form::Urlencoded))
    );
    assert_eq!(
        k(&[("content-type", "multipart/form-data")]),
        Err(Reason::MalformedBody)
    );
    // PHP cuts the type at `,` or a space; Rack reads a body without a type as a form.
    for odd in [
        "application/x-www-form-urlencoded,x",
        "application/x-www-form-urlencoded x",
        "text/plain, application/x-www-form-urlencoded",
    ] {
        assert_eq!(
            k(&[("content-type", odd)]),
            Ok(Some(Form::Urlencoded)),
            "{odd}"
        );
    }
    assert_eq!(k(&[("content-length", "5")]), Ok(Some(Form::Urlencoded)));
    assert_eq!(
        k(&[("transfer-encoding", "chunked")]),
        Ok(Some(Form::Urlencoded))
    );
    assert_eq!(k(&[("content-length", "0")]), Ok(None));
}

#[test]
fn urlencoded_forms_name_the_method_in_any_spelling() {
    let url = "application/x-www-form-urlencoded";
    assert_eq!(of(url, "a=1&_method=DELETE"), Ok(Some(Method::DELETE)));
    assert_eq!(of(url, "_METHOD=%20delete+"), Ok(Some(Method::DELETE)));
    assert_eq!(of(url, "%5Fmethod=PUT"), Ok(Some(Method::PUT)));
    assert_eq!(of(url, "a=_method"), Ok(None));
    assert_eq!(
        of(url, "_method=GET&_method=DELETE"),
        Err(Reason::MalformedRequest)
    );
    assert_eq!(of(url, "_method=DE%20LETE"), Err(Reason::MalformedRequest));
}

#[test]
fn multipart_forms_name_the_method_or_are_refused() {
    let body = |parts: &[String]| format!("{}--XyZ--\r\n", parts.concat());
    let plain = part("name=\"title\"", "hello");
    assert_eq!(of(MP, &body(std::slice::from_ref(&plain))), Ok(None));
    let named = part("name=\"_method\"", "DELETE");
    assert_eq!(
        of(MP, &body(&[plain.clone(), named])),
        Ok(Some(Method::DELETE))
    );
    assert_eq!(
        of(MP, &body(&[part("name=\"_Method\"", "put")])),
        Ok(Some(Method::PUT))
    );
    // Names another parser could read as `_method`, or the word where keygate read no field.
    for disposition in [
        "name*=utf-8''%5Fmethod",
        "name*=UTF-8''_method",
        "name*=UTF-8''%5F%6Dethod",
        "name*=utf-8''_%6Dethod",
        "name*0=\"_me\"; name*1=\"thod\"",
        "name*0*=utf-8''%5F; name*1=method",
        "name=\"_meth\\od\"",
        "name=\"=?utf-8?q?=5Fmethod?=\"",
        "name=\"x\"\r\n name=\"_method\"",
        "filename=\"_method\"; name=\"file\"",
    ] {
        let r = of(MP, &body(&[part(disposition, "DELETE")]));
        assert_eq!(r, Err(Reason::MalformedBody), "{disposition}");
    }
    let r = of(MP, &body(&[part("name=\"note\"", "see _method")]));
    assert_eq!(r, Err(Reason::MalformedBody));
    // Not multipart at all, or cut short.
    assert_eq!(of(MP, "_method=DELETE"), Err(Reason::MalformedBody));
    assert_eq!(
        of(
            MP,
            "--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDEL"
        ),
        Err(Reason::MalformedBody)
    );
    let two = body(&[
        part("name=\"_method\"", "GET"),
        part("name=\"_method\"", "DELETE"),
    ]);
    assert_eq!(of(MP, &two), Err(Reason::MalformedRequest));
}
