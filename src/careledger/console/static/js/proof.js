// Checking a transaction's inclusion proof in the page (docs/protocol.md sections 8, 9 and 12), the same
// checks as careledger.core.proofs.verify_proof: chain id, block signature by a validator (or, on a
// CometBFT network, a proposer address of a validator and no signature), the transaction's and the
// receipt's audit paths to the header's roots, and that the receipt names this transaction.

import { encode, encodeBytes } from './canonical.js';
import { concat, fromHex, sha256, sha256Hex, toHex, utf8 } from './bytes.js';
import { verify } from './keys.js';

const leafHash = (data) => sha256(concat(new Uint8Array([0]), data));
const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));

/** RFC 9162 section 2.1.3.2: the root an audit path leads to, or null when the path does not fit. */
export async function rootFromPath(leaf, index, size, path) {
  if (index >= size) return null;
  let fn = index;
  let sn = size - 1;
  let r = await leafHash(leaf);
  for (const hex of path) {
    const p = fromHex(hex);
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn !== 0 && fn % 2 === 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn === 0 ? toHex(r) : null;
}

async function cometbftAddress(pubHex) {
  return toHex((await sha256(fromHex(pubHex))).slice(0, 20));
}

/** Each check with its outcome: [{check, ok}] in order; all ok means the proof holds. */
export async function checkProof(bundle, chainId, validatorKeys, engine = 'solo') {
  const out = [];
  const header = bundle.header;
  out.push({ check: 'chain', ok: header.chain_id === chainId });
  const blockHash = await sha256(encodeBytes(header));
  if (engine === 'cometbft' && !bundle.block_signature) {
    const addrs = await Promise.all(validatorKeys.map(cometbftAddress));
    out.push({ check: 'signature', ok: addrs.includes(header.proposer) });
  } else {
    out.push({
      check: 'signature',
      ok: validatorKeys.includes(header.proposer) && await verify(header.proposer, bundle.block_signature, 'block', chainId, blockHash),
    });
  }
  const raw = fromHex(bundle.tx);
  out.push({ check: 'tx_path', ok: await rootFromPath(raw, bundle.index, header.tx_count, bundle.tx_path) === header.txs_root });
  out.push({
    check: 'receipt_path',
    ok: await rootFromPath(utf8(encode(bundle.receipt)), bundle.index, header.tx_count, bundle.receipt_path) === header.receipts_root,
  });
  out.push({ check: 'receipt_tx', ok: bundle.receipt.tx === await sha256Hex(raw) && bundle.receipt.index === bundle.index });
  return { checks: out, ok: out.every((c) => c.ok), blockHash: toHex(blockHash) };
}
