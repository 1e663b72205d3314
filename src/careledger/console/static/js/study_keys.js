// A patient's study keys (careledger.contracts.research.study_keys): one Ed25519 key per study, trial
// or research category, derived from her own seed with HKDF-SHA-256 (salt "careledger/study-key/v1",
// info the study or trial id, or "category/<code>"), so only she can name herself in a study. Her
// study pseudonym is "sp-" + the first 16 bytes of SHA-256(study public key), in hex.

import { fromHex, sha256Hex, utf8 } from './bytes.js';
import { importSeed } from './keys.js';

const SALT = utf8('careledger/study-key/v1');

/** The HKDF info of a scope: the study (or trial) id, or category/<code>. */
export function scopeInfo(scope, target) {
  if (scope === 'study') return target;
  if (scope === 'category') return `category/${target}`;
  throw new Error(`unknown research scope ${scope}`);
}

/** The unlocked key's study key for `info` (an unlocked key like keys.js makes, signing as itself). */
export async function deriveStudyKey(key, info) {
  const bits = new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: SALT, info: utf8(info) }, key.studyBase, 256));
  try {
    return await importSeed(bits);
  } finally {
    bits.fill(0);
  }
}

/** The study pseudonym a study key signs as. */
export async function studyPseudonym(publicHex) {
  return 'sp-' + (await sha256Hex(fromHex(publicHex))).slice(0, 32);
}
