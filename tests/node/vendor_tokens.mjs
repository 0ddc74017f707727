// Tokens made as each vendor's server side makes them, for keygate's example tests.
// Usage: node vendor_tokens.mjs KIND ARGS... ; prints {"token": "..."}.
//   knock USER_ID PRIVATE_KEY_FILE GRANT_USER...  @knocklabs/node signUserToken with UserFeedRead grants
//   novu SUBSCRIBER_ID SECRET                        hex HMAC-SHA256 (Novu's documented recipe)
//   magicbell ID SECRET                              base64 HMAC-SHA256 (MagicBell's documented recipe)
//   suprsend DISTINCT_ID TENANT PRIVATE_KEY_FILE     ES256 JWT {entity_type, entity_id, scope.tenant_id}
//   courier SCOPE SECRET                             HS256 JWT {scope: "user_id:<id> ..."}
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import * as jose from "jose";
import { signUserToken, buildUserTokenGrant, Grants } from "@knocklabs/node";

const [kind, ...args] = process.argv.slice(2);
const now = Math.floor(Date.now() / 1000);
let token;
switch (kind) {
  case "knock": {
    const [user, keyFile, ...grantUsers] = args;
    const grants = grantUsers.map((id) => buildUserTokenGrant({ type: "user", id }, [Grants.UserFeedRead]));
    token = await signUserToken(user, { signingKey: readFileSync(keyFile, "utf8"), expiresInSeconds: 600, grants });
    break;
  }
  case "novu":
    token = createHmac("sha256", args[1]).update(args[0]).digest("hex");
    break;
  case "magicbell":
    token = createHmac("sha256", args[1]).update(args[0]).digest("base64");
    break;
  case "suprsend": {
    const [distinctId, tenant, keyFile] = args;
    const key = await jose.importPKCS8(readFileSync(keyFile, "utf8"), "ES256");
    token = await new jose.SignJWT({ entity_type: "subscriber", entity_id: distinctId, scope: { tenant_id: tenant } })
      .setProtectedHeader({ alg: "ES256", typ: "JWT" })
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(key);
    break;
  }
  case "courier": {
    const [scope, secret] = args;
    token = await new jose.SignJWT({ scope })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .setJti(crypto.randomUUID())
      .sign(new TextEncoder().encode(secret));
    break;
  }
  default:
    throw new Error("unknown kind " + kind);
}
process.stdout.write(JSON.stringify({ token }) + "\n");
