// A careless Express 4 backend, as attacks meet it: every handler is `app.all` (any method),
// routing is Express's default (case-insensitive, trailing slash optional), no 'upgrade'
// listener (Node then serves an Upgrade request as a plain request), it trusts x-auth-user-id
// blindly, and it honours method overrides the way apps commonly do with `method-override`:
// the X-HTTP-Method-Override header, the `_method` query parameter (also as Express's qs parses
// the query), and a `_method` form field.
// An admin-only DELETE handler sits beside a public GET/POST one on /items/:id. Prints one JSON
// line per request it serves:
// {"backend":"express","handler":..,"method":..,"url":..,"headers":{..}}.
const express = require("express");
const methodOverride = require("method-override");

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(methodOverride("X-HTTP-Method-Override"));
app.use(methodOverride("_method"));
// A getter over Express's own parsed query (qs: `[_method]=DELETE` reads as `_method`).
app.use(methodOverride((req) => (typeof req.query._method === "string" ? req.query._method : undefined)));
app.use(
  methodOverride((req) => {
    if (req.body && typeof req.body === "object" && "_method" in req.body) {
      const m = req.body._method;
      delete req.body._method;
      return m;
    }
  }),
);
const serve = (handler) => (req, res) => {
  out({ backend: "express", handler, method: req.method, url: req.originalUrl, headers: req.headers });
  res.json({ handler, protected: "secret-data", user: req.headers["x-auth-user-id"] || null });
};
app.all("/healthz", serve("health"));
app.all("/api/v1/*", serve("customer_api"));
app.all("/v1/users/:user/feeds/:feed", serve("knock_feed"));
app.all("/v1/messages/batch/:status", serve("knock_batch"));
app.all("/widget/*", serve("widget"));
app.all("/v1/events/*", serve("events"));
app.all("/admin/*", serve("admin"));
app.delete("/items/:id", serve("items_admin"));
app.all("/items/:id", serve("public_items"));
app.use(serve("fallback"));
const srv = app.listen(0, "127.0.0.1", () => out({ event: "listening", port: srv.address().port }));
