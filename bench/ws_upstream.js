// The websocket upstream of `bench/run --memory` (bench/bench.py): on one port, a plain `ws`
// echo server (any path but /socket.io/) and a Socket.IO v4 server at /socket.io/ whose "ping"
// event is answered with a "pong" carrying the same data. Plain HTTP requests get 200 "ok".
// Usage: node ws_upstream.js PORT   (NODE_PATH=tests/node/node_modules; `npm ci` there first)
const http = require("http");
const { WebSocketServer } = require("ws");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const srv = http.createServer((req, res) => res.end("ok"));
// Socket.IO: no server pings during a measurement (the idle clients do not answer them).
const io = new Server(srv, { path: "/socket.io/", pingInterval: 3600000, pingTimeout: 3600000, perMessageDeflate: false });
io.on("connection", (socket) => socket.on("ping", (data) => socket.emit("pong", data)));
// engine.io attached its own upgrade listener; plain websockets take every other path.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
srv.on("upgrade", (req, sock, head) => {
  if (req.url.startsWith("/socket.io/")) return; // engine.io's
  wss.handleUpgrade(req, sock, head, (ws) => ws.on("message", (m, bin) => ws.send(m, { binary: bin })));
});
srv.listen(port, "127.0.0.1", () => process.stdout.write(`listening ${port}\n`));
