// A backend that trusts nothing on the network but keygate's signed identity assertion: it
// verifies `x-auth-assertion` on every request, and the `assertion` of every Socket.IO CONNECT's
// identity object, with jose against keygate's published JWK set.
// Usage: node assertion_backend.mjs JWKS_URL AUDIENCE
// Prints JSON lines: {"event":"listening","port":N}, then per request
// {"event":"request","url":..,"count":N,"verified":bool,"payload":..|null,"alg":..,"error":..}
// (count: how many assertion headers arrived, in any spelling) and per CONNECT
// {"event":"connection","verified":..,"payload":..,"error":..}. Answers each request with the
// same object as JSON.
import http from "node:http";
import * as jose from "jose";
import { Server } from "socket.io";

const [jwksUrl, audience] = process.argv.slice(2);
const JWKS = jose.createRemoteJWKSet(new URL(jwksUrl));
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

async function verify(token) {
  if (typeof token !== "string") return { verified: false, payload: null, error: "absent" };
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(token, JWKS, {
      issuer: "keygate",
      audience,
      algorithms: ["ES256", "EdDSA"],
      typ: "JWT",
      maxTokenAge: "2 minutes",
    });
    return { verified: true, payload, alg: protectedHeader.alg, kid: protectedHeader.kid };
  } catch (e) {
    return { verified: false, payload: null, error: e.code || String(e.message) };
  }
}

const srv = http.createServer(async (req, res) => {
  const names = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) names.push(req.rawHeaders[i]);
  const spelled = (n) => n.toLowerCase().replace(/_/g, "-") === "x-auth-assertion";
  const count = names.filter(spelled).length;
  const result = { event: "request", url: req.url, count, ...(await verify(req.headers["x-auth-assertion"])) };
  out(result);
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify(result));
});
const io = new Server(srv, { path: "/socket.io" });
io.on("connection", async (socket) => {
  const identity = socket.handshake.auth.identity || {};
  out({ event: "connection", user: identity.user_id ?? null, ...(await verify(identity.assertion)) });
});
srv.listen(0, "127.0.0.1", () => out({ event: "listening", port: srv.address().port }));
