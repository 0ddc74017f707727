// Socket.IO churn of bench/soak.py: a real socket.io-client v4 (tests/node/node_modules) that,
// every INTERVAL_MS, opens a websocket, CONNECTs with auth { token: "Bearer <jwt>" } (the next
// token of TOKENS_FILE), emits "ping", waits for the "pong", and disconnects.
// Usage: node bench/soak_sio.js URL PATH TOKENS_FILE [INTERVAL_MS]
// Prints one JSON line every 10 s: {"ok":N,"connect_error":N,"timeout":N} (totals so far).
const path = require("path");
const fs = require("fs");
const { io } = require(path.join(__dirname, "..", "tests", "node", "node_modules", "socket.io-client"));

const [url, sioPath, tokensFile, intervalArg = "1000"] = process.argv.slice(2);
const tokens = fs.readFileSync(tokensFile, "utf8").split("\n").filter((t) => t.length > 0);
const interval = Number(intervalArg);
const stats = { ok: 0, connect_error: 0, timeout: 0 };
let next = 0;

function once() {
  const token = tokens[next++ % tokens.length];
  const nsp = next % 2 === 0 ? "" : "/tenant";
  const socket = io(url + nsp, {
    path: sioPath,
    transports: ["websocket"],
    auth: { token: "Bearer " + token },
    reconnection: false,
    forceNew: true,
    timeout: 5000,
  });
  let done = false;
  const finish = (what) => {
    if (done) return;
    done = true;
    stats[what]++;
    clearTimeout(timer);
    socket.disconnect();
  };
  const timer = setTimeout(() => finish("timeout"), 5000);
  socket.on("connect", () => {
    socket.once("pong", () => finish("ok"));
    socket.emit("ping", { n: next });
  });
  socket.on("connect_error", () => finish("connect_error"));
}

setInterval(once, interval);
setInterval(() => process.stdout.write(JSON.stringify(stats) + "\n"), 10000);
