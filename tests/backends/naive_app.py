#!/usr/bin/env python3
"""A careless WSGI-style backend: answers every method on every path with 200 and the
"protected" data, ignores Upgrade and Expect, and trusts x-auth-user-id blindly (Python's
http.server, HTTP/1.1 keep-alive). Prints {"event":"listening","port":N}, then one JSON line per
request: {"backend":"python","method":..,"url":..,"headers":[[name, value], ...]}."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


PRINTING = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except ConnectionError:
            self.close_connection = True

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.serve
        raise AttributeError(name)

    def serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        record = {
            "backend": "python",
            "method": self.command,
            "url": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
        }
        with PRINTING:  # one whole line per record: the server is threaded
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
        body = json.dumps({"protected": "secret-data", "user": self.headers.get("x-auth-user-id")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args):
        pass


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"event": "listening", "port": srv.server_address[1]}), flush=True)
srv.serve_forever()
