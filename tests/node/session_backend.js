// A backend for keygate's session tests: a real Socket.IO v4 server on PATH and a plain
// websocket server (npm `ws`, as a Phoenix-style or custom backend) on every other path, on one
// port. Prints one JSON line per event on stdout:
// {"event":"listening","port":N}; Socket.IO: {"event":"connection","nsp":..,"identity":..},
// {"event":"disconnect","reason":..,"identity":..}; plain: {"event":"ws_open","url":..,"user":..},
// {"event":"ws_close","code":N,"reason":..,"user":..}. Both echo: "ping" -> "pong", message ->
// the same message.
const http = require("http");
const { Server } = require("socket.io");
const { WebSocketServer } = require("ws");

const path = process.argv[2] || "/api/v1/wss/socket.io";
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const srv = http.createServer((req, res) => res.end("ok"));
// destroyUpgrade: false leaves upgrades on other paths to the plain server below.
const io = new Server(srv, { path, destroyUpgrade: false });
for (const nsp of ["/", "/tenant"]) {
  io.of(nsp).on("connection", (socket) => {
    const identity = socket.handshake.auth.identity || null;
    out({ event: "connection", nsp, identity });
    socket.on("ping", (data) => socket.emit("pong", data));
    socket.on("disconnect", (reason) => out({ event: "disconnect", nsp, reason, identity }));
  });
}
const wss = new WebSocketServer({ noServer: true });
srv.on("upgrade", (req, socket, head) => {
  if (req.url.startsWith(path + "/")) return; // engine.io's
  wss.handleUpgrade(req, socket, head, (ws) => {
    const user = req.headers["x-auth-user-id"] || null;
    out({ event: "ws_open", url: req.url.split("?")[0], user });
    ws.on("message", (data) => ws.send(String(data)));
    ws.on("close", (code, reason) => out({ event: "ws_close", code, reason: String(reason), user }));
  });
});
srv.listen(0, "127.0.0.1", () => out({ event: "listening", port: srv.address().port }));
