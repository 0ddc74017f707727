#!/usr/bin/env python3
"""A careless Flask (Werkzeug) backend: protected handlers that trust x-auth-user-id blindly,
served by Werkzeug's own HTTP server, which routes a request target the way Werkzeug reads it
(`DELETE admin/users HTTP/1.1` reaches /admin/users). It honours method overrides as the Flask
documentation's middleware does (HTTP_X_HTTP_METHOD_OVERRIDE from the WSGI environ, which
`X_HTTP_Method_Override` also becomes) and the `_method` query/form field (as Laravel/Symfony).
Prints {"event":"listening","port":N}, then one JSON line per request it serves:
{"backend":"flask","handler":..,"method":..,"url":..,"headers":[[name, value], ...]}."""
import io
import json
import sys
import threading
from urllib.parse import parse_qs

from flask import Flask, jsonify, request
from werkzeug.formparser import parse_form_data
from werkzeug.serving import make_server


class MethodOverride:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE")
        if not method:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            method = (query.get("_method") or [None])[0]
        if not method and environ.get("REQUEST_METHOD") == "POST":
            # Werkzeug's own form parser (urlencoded and multipart, RFC 2231 names decoded).
            n = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(n) if n else b""
            form = parse_form_data(dict(environ, **{"wsgi.input": io.BytesIO(raw)}))[1]
            method = form.get("_method")
            environ["wsgi.input"] = io.BytesIO(raw)
        if method:
            environ["REQUEST_METHOD"] = method.upper()
        return self.app(environ, start_response)


app = Flask(__name__)
app.wsgi_app = MethodOverride(app.wsgi_app)
ALL = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]


PRINTING = threading.Lock()  # one whole line per record: the server is threaded


def record(handler):
    line = json.dumps({
        "backend": "flask",
        "handler": handler,
        "method": request.method,
        "url": request.full_path if request.query_string else request.path,
        "headers": [[k, v] for k, v in request.headers.items()],
    }) + "\n"
    with PRINTING:
        sys.stdout.write(line)
        sys.stdout.flush()
    return jsonify(handler=handler, protected="secret-data", user=request.headers.get("x-auth-user-id"))


@app.route("/healthz", methods=ALL)
def health():
    return record("health")


@app.route("/admin/<path:rest>", methods=ALL)
def admin(rest):
    return record("admin")


@app.route("/api/v1/<path:rest>", methods=ALL)
def customer_api(rest):
    return record("customer_api")


@app.route("/items/<item>", methods=["DELETE"])
def items_admin(item):
    return record("items_admin")


@app.route("/items/<item>", methods=["GET", "POST"])
def public_items(item):
    return record("public_items")


@app.route("/", defaults={"rest": ""}, methods=ALL)
@app.route("/<path:rest>", methods=ALL)
def fallback(rest):
    return record("fallback")


server = make_server("127.0.0.1", 0, app, threaded=True)
print(json.dumps({"event": "listening", "port": server.server_port}), flush=True)
server.serve_forever()
