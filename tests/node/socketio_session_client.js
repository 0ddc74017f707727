// socket.io-client v4 across token expiries, as a DokaAI customer's app runs it: it mints its
// own short-lived RS256 tokens and hands them over with an `auth` callback (called again on every
// reconnect), or passes one static `auth` object.
// Usage: node socketio_session_client.js URL PATH KEY_PEM KID SUB TTL_SECONDS callback|static CONNECTS
// Token claims: sub, n (1, 2, ... per token minted), iat, exp.
// Prints JSON lines: {"event":"token","exp":..}, {"event":"connect","at":ms,"exp":..},
// {"event":"pong","n":..}, {"event":"disconnect","reason":..,"at":ms,"exp":..},
// {"event":"connect_error","message":..,"data":..}; exits after CONNECTS connects and one
// pong on the last, after a connect_error, or after 60 s.
const crypto = require("crypto");
const fs = require("fs");
const { io } = require("socket.io-client");

const [url, path, keyFile, kid, sub, ttl, mode, connects = "4"] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const key = fs.readFileSync(keyFile, "utf8");
const b64 = (b) => Buffer.from(b).toString("base64url");
let exp = 0;
let minted = 0;
function mint() {
  const now = Math.floor(Date.now() / 1000);
  exp = now + Number(ttl);
  minted += 1;
  const head = b64(JSON.stringify({ alg: "RS256", typ: "JWT", kid }));
  const body = b64(JSON.stringify({ sub, n: minted, iat: now, exp }));
  const sig = crypto.sign("sha256", Buffer.from(head + "." + body), key).toString("base64url");
  out({ event: "token", exp });
  return "Bearer " + head + "." + body + "." + sig;
}
const auth = mode === "static" ? { token: mint() } : (cb) => cb({ token: mint() });
const socket = io(url, { path, transports: ["websocket"], auth, timeout: 5000 });
const want = Number(connects);
let n = 0;
let pings = 0;
socket.on("connect", () => {
  n += 1;
  out({ event: "connect", at: Date.now(), exp });
  socket.emit("ping", { n });
});
socket.on("pong", (data) => {
  pings += 1;
  out({ event: "pong", n: data.n });
  if (n >= want) {
    socket.disconnect();
    process.exit(0);
  }
});
socket.on("disconnect", (reason) => out({ event: "disconnect", reason, at: Date.now(), exp }));
socket.on("connect_error", (err) => {
  out({ event: "connect_error", message: err.message, data: err.data || null, at: Date.now() });
  process.exit(0);
});
setTimeout(() => {
  out({ event: "timeout" });
  process.exit(0);
}, 60000);
