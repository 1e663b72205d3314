// Everything the page signs, in one place: transactions and signed requests. No network calls here
// (those are in api.js).
//
//   tx       docs/protocol.md section 4: sig = Ed25519(signing_message("tx", chain_id, canonical(body)))
//   request  docs/protocol.md section 4.3 (careledger.vault.requests): the one scheme of every signed
//            read, Authorization: CareLedger-Request key=…, time=…, nonce=…, sig=… where sig signs
//            canonical({body: hex(SHA-256(body)), method, nonce, requester, target, time_ms})
//            in domain "request"

import { encode } from './canonical.js';
import { randomHex, sha256Hex, utf8 } from './bytes.js';
import { sign } from './keys.js';

/** The signed wire text of a transaction and its hash. `key` is an unlocked key {privateKey, publicHex}. */
export async function signTx(key, chainId, type, payload, nonce, version = 1) {
  const body = { chain_id: chainId, nonce, payload, signer: key.publicHex, type, version };
  const bodyText = encode(body);
  const sig = await sign(key.privateKey, 'tx', chainId, utf8(bodyText));
  const wire = '{"body":' + bodyText + ',"sig":"' + sig + '"}';
  if (wire !== encode({ body, sig })) throw new Error('wire bytes are not canonical');
  return { wire, txHash: await sha256Hex(utf8(wire)) };
}

/** The bytes a signed request signs (protocol.md section 4.3): the method, the target (path and query
 * exactly as sent), the SHA-256 of the body text's UTF-8 bytes, who asks, when, and a nonce. */
export async function signedRequestText(method, target, bodyText, requester, timeMs, nonce) {
  const body = await sha256Hex(utf8(bodyText));
  return encode({ body, method: method.toUpperCase(), nonce, requester, target, time_ms: timeMs });
}

/** `{Authorization}` signing `method target` with `bodyText` ('' for a GET) as `key`, now, with a fresh nonce. */
export async function signRequest(key, chainId, method, target, bodyText = '', nowMs = Date.now(), nonce = randomHex(16)) {
  const signed = await signedRequestText(method, target, bodyText, key.publicHex, nowMs, nonce);
  const sig = await sign(key.privateKey, 'request', chainId, utf8(signed));
  return { Authorization: `CareLedger-Request key=${key.publicHex}, time=${nowMs}, nonce=${nonce}, sig=${sig}` };
}

/** A typed request body: `kind` and the fields that are not null or undefined. */
export function typedRequest(kind, fields) {
  const request = { kind };
  for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) request[k] = v;
  return request;
}
