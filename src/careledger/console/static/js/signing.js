// Everything the page signs, in one place: transactions and the two signed-request schemes.
// Issue 11 will unify the two request schemes (vault envelopes and signed HTTP reads) into one; when it
// lands, only this module changes. No network calls here (those are in api.js).
//
//   tx        docs/protocol.md section 4: sig = Ed25519(signing_message("tx", chain_id, canonical(body)))
//   envelope  docs/records.md "Signed requests": {"request": {...}, "sig"} over canonical(request),
//             domain "request" (careledger.vault.requests)
//   headers   docs/supply-chain.md "Alerts": X-CareLedger-Key/-Timestamp/-Signature over
//             METHOD "\n" TARGET "\n" TIMESTAMP, domain "request" (careledger.supply.auth)

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

/** A vault request envelope of `kind` (read, view, index, anchors, store): fresh nonce, current time. */
export async function signEnvelope(key, chainId, kind, fields, nowMs = Date.now()) {
  const request = { kind, nonce: randomHex(16), requester: key.publicHex, time_ms: nowMs };
  for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) request[k] = v;
  const sig = await sign(key.privateKey, 'request', chainId, utf8(encode(request)));
  return { request, sig };
}

/** The three headers that sign `METHOD target` (path and query exactly as sent). */
export async function signedReadHeaders(key, chainId, method, target, nowMs = Date.now()) {
  const stamp = String(nowMs);
  const sig = await sign(key.privateKey, 'request', chainId, utf8(`${method.toUpperCase()}\n${target}\n${stamp}`));
  return { 'X-CareLedger-Key': key.publicHex, 'X-CareLedger-Timestamp': stamp, 'X-CareLedger-Signature': sig };
}
