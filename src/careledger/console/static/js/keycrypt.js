// Passphrase-encrypted key files, version 2: the format of careledger.keycrypt (docs/console.md).
// scrypt (RFC 7914, noble-hashes) derives a 32-byte key from the NFC-normalised passphrase; AES-256-GCM
// (WebCrypto) seals the 32-byte Ed25519 seed with AAD "CareLedger/keyfile/v2" 0x00 public_key.

import { scryptAsync } from '../vendor/noble-hashes/scrypt.js';
import { concat, fromHex, toHex, utf8 } from './bytes.js';
import { KeyFileError } from './errors.js';

export const DEFAULT_PARAMS = { n: 2 ** 17, r: 8, p: 1 };
const MIN_N = 2 ** 10;
const MAX_N = 2 ** 20;
const MAX_MEMORY = 256 * 1024 * 1024;
const AAD_PREFIX = utf8('CareLedger/keyfile/v2\u0000');

export { KeyFileError };

export function checkKdfParams(n, r, p) {
  for (const x of [n, r, p]) {
    if (!Number.isSafeInteger(x)) throw new KeyFileError('scrypt parameters n, r and p must be integers');
  }
  if (n < MIN_N || n > MAX_N || (n & (n - 1)) !== 0) throw new KeyFileError('scrypt n out of bounds');
  if (r < 1 || r > 32 || p < 1 || p > 16) throw new KeyFileError('scrypt r or p out of bounds');
  if (128 * n * r > MAX_MEMORY) throw new KeyFileError('scrypt parameters need more than 256 MiB');
}

function hexField(obj, name, minBytes, maxBytes) {
  const v = obj?.[name];
  if (typeof v !== 'string' || !/^([0-9a-f]{2})+$/.test(v) || v.length / 2 < minBytes || v.length / 2 > maxBytes) {
    throw new KeyFileError(`key file field ${name} is malformed`);
  }
  return fromHex(v);
}

export async function deriveKey(passphrase, salt, n, r, p, onProgress) {
  checkKdfParams(n, r, p);
  if (!passphrase) throw new KeyFileError('the passphrase is empty');
  const pw = utf8(passphrase.normalize('NFC'));
  const dk = await scryptAsync(pw, salt, { N: n, r, p, dkLen: 32, maxmem: 2 * 128 * n * r + 1024 * 1024, onProgress });
  return crypto.subtle.importKey('raw', dk, 'AES-GCM', false, ['encrypt', 'decrypt']);
}

export function isEncrypted(doc) {
  return !!doc && typeof doc === 'object' && doc.version === 2 && 'crypto' in doc;
}

/** The version-2 document sealing `seed` (Uint8Array 32) of `publicHex` under `passphrase`. */
export async function encryptKeyfile(seed, publicHex, passphrase, name = '', opts = {}) {
  const { n, r, p } = { ...DEFAULT_PARAMS, ...opts };
  const salt = opts.salt ?? crypto.getRandomValues(new Uint8Array(16));
  const nonce = opts.nonce ?? crypto.getRandomValues(new Uint8Array(12));
  const key = await deriveKey(passphrase, salt, n, r, p, opts.onProgress);
  const sealed = new Uint8Array(await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce, additionalData: concat(AAD_PREFIX, utf8(publicHex)) }, key, seed));
  return {
    crypto: {
      cipher: 'aes-256-gcm', ciphertext: toHex(sealed), kdf: 'scrypt',
      kdfparams: { dklen: 32, n, p, r, salt: toHex(salt) }, nonce: toHex(nonce),
    },
    kind: 'ed25519', name, public_key: publicHex, version: 2,
  };
}

/** The 32-byte seed sealed in a version-2 document. Throws KeyFileError (reason 'passphrase' when the
 * tag does not verify). The caller checks that the seed's public key is `doc.public_key`. */
export async function decryptKeyfile(doc, passphrase, onProgress) {
  if (!doc || doc.kind !== 'ed25519' || doc.version !== 2) throw new KeyFileError('not an encrypted key file');
  if (typeof doc.public_key !== 'string' || !/^[0-9a-f]{64}$/.test(doc.public_key)) {
    throw new KeyFileError('key file public_key is malformed');
  }
  const c = doc.crypto;
  if (!c || c.kdf !== 'scrypt' || c.cipher !== 'aes-256-gcm') throw new KeyFileError('unsupported kdf or cipher');
  const kp = c.kdfparams;
  if (!kp || kp.dklen !== 32) throw new KeyFileError('key file kdfparams are malformed');
  checkKdfParams(kp.n, kp.r, kp.p);
  const salt = hexField(kp, 'salt', 16, 64);
  const nonce = hexField(c, 'nonce', 12, 12);
  const sealed = hexField(c, 'ciphertext', 48, 48);
  const key = await deriveKey(passphrase, salt, kp.n, kp.r, kp.p, onProgress);
  try {
    return new Uint8Array(await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: nonce, additionalData: concat(AAD_PREFIX, utf8(doc.public_key)) }, key, sealed));
  } catch {
    throw new KeyFileError('the passphrase does not open this key file', 'passphrase');
  }
}
