// jwt_interop.js: the npm `jose` library against the node's JWTs (issue 5 interop), driven by
// tests/integration/test_http_interop.py. `jose` is loaded from tests/interop/node_modules (npm ci
// by run.sh); its absence is an exception, so the test fails (it never skips).
//
//   node jwt_interop.js verify SECRET_B64 AUDIENCE TOKEN...
//       verifies each TOKEN with jose.jwtVerify (HS256 only, the audience given, the secret's
//       decoded bytes as the HMAC key) and prints one JSON array: {"ok": true, "header", "payload"}
//       or {"ok": false, "code": jose's error code} per token.
//   node jwt_interop.js mint SECRET_B64 AUDIENCE SUB ROLE
//       prints one JSON object of tokens minted by jose: "good" (HS256, typ JWT, sub, role, aud,
//       iat, exp in 10 min, jti), "minimal" (only the claims the node requires: exp, aud, role),
//       "aud_list" (aud an array holding AUDIENCE), and the ones the node must refuse: "alg_none"
//       (jose's UnsecuredJWT), "expired" (exp an hour ago), "nbf_future" (nbf in an hour),
//       "wrong_aud", "wrong_secret" (another random 32-byte key), "hs512" (same secret, HS512).
// Exit 0 when the command ran, 1 on any exception, 2 on usage.
'use strict';
const path = require('path');
const crypto = require('crypto');
const jose = require(path.join(__dirname, 'node_modules', 'jose'));

const usage = () => {
  console.error('usage: jwt_interop.js verify SECRET_B64 AUD TOKEN... | mint SECRET_B64 AUD SUB ROLE');
  process.exit(2);
};

async function verify(secret, aud, tokens) {
  const out = [];
  for (const t of tokens) {
    try {
      const r = await jose.jwtVerify(t, secret, {algorithms: ['HS256'], audience: aud});
      out.push({ok: true, header: r.protectedHeader, payload: r.payload});
    } catch (e) {
      out.push({ok: false, code: e.code || e.name, message: e.message});
    }
  }
  return out;
}

function signed(claims, key, alg = 'HS256') {
  return new jose.SignJWT(claims).setProtectedHeader({alg, typ: 'JWT'});
}

async function mint(secret, aud, sub, role) {
  const now = Math.floor(Date.now() / 1000);
  const other = crypto.randomBytes(32);
  const full = (key, alg) =>
    signed({role}, key, alg)
      .setSubject(sub)
      .setAudience(aud)
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .setJti(crypto.randomUUID());
  return {
    good: await full(secret).sign(secret),
    minimal: await signed({role}).setAudience(aud).setExpirationTime('10m').sign(secret),
    aud_list: await full(secret).setAudience(['another-service', aud]).sign(secret),
    alg_none: new jose.UnsecuredJWT({role})
      .setSubject(sub)
      .setAudience(aud)
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .encode(),
    expired: await full(secret).setIssuedAt(now - 7200).setExpirationTime(now - 3600).sign(secret),
    nbf_future: await full(secret).setNotBefore(now + 3600).setExpirationTime(now + 7200).sign(secret),
    wrong_aud: await full(secret).setAudience('not-' + aud).sign(secret),
    wrong_secret: await full(other).sign(other),
    hs512: await full(secret, 'HS512').sign(secret),
  };
}

async function main() {
  const [cmd, secretB64, aud, ...rest] = process.argv.slice(2);
  if (!cmd || !secretB64 || !aud) usage();
  const secret = new Uint8Array(Buffer.from(secretB64, 'base64'));
  if (secret.length < 32) throw new Error('the secret must decode to at least 32 bytes');
  if (cmd === 'verify' && rest.length > 0) {
    console.log(JSON.stringify(await verify(secret, aud, rest)));
  } else if (cmd === 'mint' && rest.length === 2) {
    console.log(JSON.stringify(await mint(secret, aud, rest[0], rest[1])));
  } else {
    usage();
  }
}

main().catch((e) => {
  console.error('jwt_interop: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
