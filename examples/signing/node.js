// Sign and verify kustom-app webhooks in Node.js (>= 16), with node:crypto only.
//
//   const header = sign(secret, rawBody);          // send as X-Commerce-Signature
//   const reason = verify(secret, rawBody, header); // X-Kustom-App-Signature; null = valid
//
// rawBody is a Buffer of the exact bytes on the wire. With Express, take it from
// express.raw({ type: 'application/json' }) (or the `verify` hook of express.json), not from
// JSON.stringify(req.body): re-serialised JSON is other bytes. Timestamps are unix SECONDS
// (Math.floor(Date.now() / 1000)), not milliseconds. Format: docs/signing.md.
//
// `node examples/signing/node.js schemas/signing-vectors.json` checks these functions
// against the known-answer vectors (prints the results as JSON).
'use strict';

const crypto = require('node:crypto');

const TOLERANCE_SECONDS = 300;

function mac(secret, timestamp, body) {
  return crypto
    .createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(`${timestamp}.`, 'utf8')
    .update(body)
    .digest('hex');
}

function sign(secret, body, timestamp = Math.floor(Date.now() / 1000)) {
  return `t=${timestamp},v1=${mac(secret, timestamp, body)}`;
}

// null when `header` signs `body` within the tolerance, else why not:
// 'missing', 'malformed', 'tolerance' or 'mismatch'.
function verify(secret, body, header, { now = Date.now() / 1000, tolerance = TOLERANCE_SECONDS } = {}) {
  if (!header) return 'missing';
  let timestamp = null;
  const macs = [];
  for (const entry of header.split(',')) {
    const item = entry.trim();
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? '' : item.slice(eq + 1);
    if (key === 't' && /^[0-9]+$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && value) macs.push(Buffer.from(value, 'utf8'));
  }
  if (timestamp === null || macs.length === 0) return 'malformed';
  if (Math.abs(now - timestamp) > tolerance) return 'tolerance';
  const expected = Buffer.from(mac(secret, timestamp, body), 'utf8');
  // Several v1 entries: the sender is rotating secrets; one match is enough.
  const matches = macs.some(
    (candidate) => candidate.length === expected.length && crypto.timingSafeEqual(candidate, expected),
  );
  return matches ? null : 'mismatch';
}

module.exports = { sign, verify, TOLERANCE_SECONDS };

if (require.main === module) {
  const vectors = JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'));
  const body = (v) => Buffer.from(v.bodyBase64, 'base64');
  const result = { sign: {}, verify: {} };
  for (const v of vectors.sign) result.sign[v.name] = sign(v.secret, body(v), v.timestamp);
  for (const v of vectors.verify) result.verify[v.name] = verify(v.secret, body(v), v.header, { now: v.now });
  console.log(JSON.stringify(result));
}
