// A real Socket.IO v4 server for keygate's tests (optionally with allowEIO3). Prints one JSON line per event on stdout:
// {"event":"listening","port":N}, {"event":"connection","nsp":..,"auth":..}, {"event":"ping",..}.
// Answers every "ping" event with a "pong" carrying the same data.
const http = require("http");
const { Server } = require("socket.io");

const path = process.argv[2] || "/api/v1/wss/socket.io";
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
// Paths other than socket.io's get a plain 200 (engine.io passes them to this handler).
const srv = http.createServer((req, res) => res.end("ok"));
// SIO_ALLOW_EIO3=1: also speak Engine.IO v3 (socket.io 2 clients), as deployments with old
// clients do; a v3 client joins "/" without a CONNECT packet and sends auth in the query.
const io = new Server(srv, { path, allowEIO3: process.env.SIO_ALLOW_EIO3 === "1" });
// Every HTTP request and upgrade the server receives, before engine.io sees it (added after
// socket.io attached, so engine.io does not wrap these listeners).
srv.prependListener("request", (req) => out({ event: "http", method: req.method, url: req.url, headers: req.headers }));
srv.prependListener("upgrade", (req) => out({ event: "upgrade", method: req.method, url: req.url, headers: req.headers }));
for (const nsp of ["/", "/tenant", "/admin"]) {
  io.of(nsp).on("connection", (socket) => {
    out({ event: "connection", nsp, auth: socket.handshake.auth, user: socket.handshake.headers["x-auth-user-id"] || null });
    socket.on("ping", (data) => {
      out({ event: "ping", nsp, data });
      socket.emit("pong", data);
    });
  });
}
io.engine.on("connection", (s) => {
  if (process.env.SIO_DEBUG) s.on("packet", (p) => out({ event: "engine_packet", type: p.type, data: String(p.data) }));
  s.on("close", (reason, desc) => out({ event: "engine_close", reason, desc: desc ? String(desc.message || desc.description || desc) : null }));
});
io.engine.on("connection_error", (e) => out({ event: "engine_error", code: e.code, message: e.message }));
srv.listen(0, "127.0.0.1", () => out({ event: "listening", port: srv.address().port }));
