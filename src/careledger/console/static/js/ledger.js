// What a signed-in person does on the ledger: sign and submit transactions, sign requests. It joins
// the unlocked key (session.js), the signing schemes (signing.js) and the HTTP calls (api.js).

import * as api from './api.js';
import { signRequest, signTx, typedRequest } from './signing.js';
import { session, requireKey } from './session.js';

let chain = null;

/** The node's status, read once: chain id, engine, genesis hash. */
export async function chainInfo(refresh = false) {
  if (!chain || refresh) chain = await api.status();
  return chain;
}

/** Sign `type` with the key's next nonce, submit, wait for the block. Returns {tx_hash, height, receipt}.
 * A contract refusal is a receipt with a non-zero code, not an exception; admission refusals throw ApiError.
 * `as` signs with another unlocked key than the session's (a patient's study key). */
export async function send(type, payload, as = null) {
  const key = as || requireKey();
  const { chain_id: chainId } = await chainInfo();
  for (let attempt = 0; ; attempt++) {
    const { next } = await api.nonce(key.publicHex);
    const { wire } = await signTx(key, chainId, type, payload, next);
    try {
      return await api.submitTx(wire);
    } catch (exc) {
      if (attempt === 0 && (exc.code === 301 || exc.code === 302)) continue; // a nonce raced: once more
      throw exc;
    }
  }
}

/** Sign `type` with the next nonce without submitting (the gateway submits an erasure itself). */
export async function signOnly(type, payload) {
  const key = requireKey();
  const { chain_id: chainId } = await chainInfo();
  const { next } = await api.nonce(key.publicHex);
  return signTx(key, chainId, type, payload, next);
}

/** A typed request body of `kind` (protocol.md section 4.3): the fields that are set. */
export const request = typedRequest;

/** The signer of the unlocked key (or of `as`), for api.js: `(method, target, bodyText) => {Authorization}`. */
export async function signer(as = null) {
  const key = as || requireKey();
  const { chain_id: chainId } = await chainInfo();
  return (method, target, bodyText) => signRequest(key, chainId, method, target, bodyText);
}

/** Where a custodian's gateway answers: its declared API on the ledger, else this node. */
const gateways = new Map();
export async function gatewayBase(custodian) {
  if (!gateways.has(custodian)) {
    const { organisations } = await api.organisations();
    for (const o of organisations) gateways.set(o.id, o.api ? o.api.replace(/\/+$/, '') : '');
    if (!gateways.has(custodian)) gateways.set(custodian, '');
  }
  const base = gateways.get(custodian);
  return base && new URL(base).origin === location.origin ? '' : base;
}

export { session };
