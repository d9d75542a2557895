// A Node.js verifier of user-service access tokens, as a calling team would write it: jose's
// createRemoteJWKSet fetches (and caches) the JWKS over HTTP, jwtVerify checks the signature,
// the issuer and the audience.
//
//   node jwks_verifier.mjs <jwks-url> <issuer> <audience> [cooldown-ms]
//
// Reads one token per stdin line (a JSON string) and writes one JSON line per token:
// {"ok": true, "sub": ..., "kid": ...} or {"ok": false, "code": ..., "message": ...}. The key
// set stays cached across lines, so a test may keep this process alive across a key rotation.
// cooldown-ms is jose's cooldownDuration: how long after a fetch an unknown kid waits before it
// may fetch again (30 s by default).
import { createInterface } from "node:readline";

import { createRemoteJWKSet, jwtVerify } from "jose";

const [url, issuer, audience, cooldown] = process.argv.slice(2);
const jwks = createRemoteJWKSet(
  new URL(url),
  cooldown === undefined ? {} : { cooldownDuration: Number(cooldown) },
);

function answer(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (!line.trim()) continue;
  try {
    const { payload, protectedHeader } = await jwtVerify(JSON.parse(line), jwks, {
      issuer,
      audience,
      algorithms: ["EdDSA"],
    });
    answer({ ok: true, sub: payload.sub, kid: protectedHeader.kid });
  } catch (error) {
    answer({ ok: false, code: error.code ?? error.name, message: error.message });
  }
}
