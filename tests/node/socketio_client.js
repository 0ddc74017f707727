// A real socket.io-client v4, as DokaAI's customers use it: auth: { token: 'Bearer <jwt>' }.
// Usage: node socketio_client.js URL PATH TOKEN|- NAMESPACE ROUNDS
// Also sends a client-supplied `identity`, which keygate must replace. Prints JSON lines:
// {"event":"connect"}, {"event":"pong","data":..}, {"event":"connect_error","message":..,"data":..}.
const { io } = require("socket.io-client");

const [url, path, token, nsp = "/", rounds = "5"] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const auth = { identity: { user_id: "spoofed-admin" }, extra: "kept" };
if (token && token !== "-") auth.token = "Bearer " + token;
const socket = io(url + (nsp === "/" ? "" : nsp), {
  path,
  transports: ["websocket"],
  auth,
  reconnection: false,
  timeout: 5000,
});
const total = Number(rounds);
let got = 0;
socket.on("connect", () => {
  out({ event: "connect" });
  socket.on("pong", (data) => {
    out({ event: "pong", data });
    if (++got >= total) {
      socket.disconnect();
      process.exit(0);
    }
  });
  for (let i = 0; i < total; i++) setTimeout(() => socket.emit("ping", { i }), i * 100);
});
socket.on("connect_error", (err) => {
  out({ event: "connect_error", message: err.message, data: err.data || null });
  process.exit(0);
});
setTimeout(() => {
  out({ event: "timeout" });
  process.exit(0);
}, 10000);
