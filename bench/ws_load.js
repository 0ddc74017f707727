// Websocket message throughput for `bench/run` (row ws-*): C websockets through the proxy,
// W messages in flight on each; every echo is checked and answered with the next message.
// Prints one JSON line: {"messages": N, "seconds": S, "rate": N/S, "errors": E}.
//   node ws_load.js ws  URL CONNS INFLIGHT WARMUP_S SECONDS             plain websocket echo
//   node ws_load.js sio URL CONNS INFLIGHT WARMUP_S SECONDS TOKEN|-     Socket.IO CONNECT, then
//        42["ping",i] -> 42["pong",i] (engine.io framing over a raw websocket, as socket.io-client)
// NODE_PATH=tests/node/node_modules (the `ws` package).
const WebSocket = require("ws");

const [mode, url, conns, inflight, warmup, seconds, token] = process.argv.slice(2);
const C = Number(conns), W = Number(inflight);
let counting = false, count = 0, errors = 0, ready = 0;
const fail = (m) => { errors++; if (errors < 5) process.stderr.write(`ws_load: ${m}\n`); };

function start(i) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const msg = (k) => (mode === "sio" ? `42["ping",${k}]` : `m${k}-bench-payload-0123456789`);
  const want = (k) => (mode === "sio" ? `42["pong",${k}]` : msg(k));
  let seq = 0, pending = [];
  const send = () => { const k = seq++; pending.push(want(k)); ws.send(msg(k)); };
  const go = () => { ready++; for (let j = 0; j < W; j++) send(); };
  ws.on("message", (data) => {
    const s = data.toString();
    if (mode === "sio") {
      if (s.startsWith("0{")) return ws.send(token && token !== "-" ? `40{"token":"Bearer ${token}"}` : "40");
      if (s.startsWith("40")) return go();
      if (s === "2") return ws.send("3");
      if (s.startsWith("44")) return fail(`connect refused: ${s}`);
    }
    const exp = pending.shift();
    if (s !== exp) return fail(`got ${s.slice(0, 60)}, expected ${exp}`);
    if (counting) count++;
    send();
  });
  ws.on("open", () => { if (mode === "ws") go(); });
  ws.on("error", (e) => fail(`socket ${i}: ${e.message}`));
  ws.on("close", () => { if (!done) fail(`socket ${i} closed`); });
}
let done = false;
for (let i = 0; i < C; i++) start(i);
setTimeout(() => {
  if (ready < C) fail(`only ${ready}/${C} sockets ready after the warm-up`);
  counting = true;
  const t0 = process.hrtime.bigint();
  setTimeout(() => {
    counting = false;
    done = true;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(JSON.stringify({ messages: count, seconds: s, rate: count / s, errors }) + "\n");
    process.exit(0);
  }, Number(seconds) * 1000);
}, Number(warmup) * 1000);
