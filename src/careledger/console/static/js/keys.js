// Ed25519 keys in the browser (WebCrypto), and the local key store (IndexedDB).
// The private key exists in this page only: the store holds each key sealed with its passphrase
// (keycrypt.js, the CLI's version-2 format); an unlocked key is a non-extractable CryptoKey kept in
// memory until the tab closes or the user locks it. Nothing here talks to the network.

import { b64urlToBytes, concat, fromHex, toHex, utf8 } from './bytes.js';
import { KeyFileError } from './errors.js';

// scrypt (noble-hashes) is loaded when a key is first sealed or opened, not with the page
const keycrypt = () => import('./keycrypt.js');

const PKCS8_PREFIX = fromHex('302e020100300506032b657004220420');
const DB_NAME = 'careledger-console';
const STORE = 'keys';

/** Whether this browser can sign here: a secure context with WebCrypto Ed25519. */
export async function signingSupport() {
  if (!window.isSecureContext || !crypto?.subtle) return 'insecure';
  try {
    await crypto.subtle.importKey('raw', new Uint8Array(32), 'Ed25519', false, ['verify']);
    return 'ok';
  } catch {
    return 'no-ed25519';
  }
}

/** An unlocked key from its 32-byte seed: {privateKey (non-extractable), publicHex, studyBase}.
 * `studyBase` is the same seed as a non-extractable HKDF key: the patient's study keys are derived
 * from it (study_keys.js) without the seed ever being readable again. */
export async function importSeed(seed) {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new KeyFileError('a seed is 32 bytes');
  const pkcs8 = concat(PKCS8_PREFIX, seed);
  const probe = await crypto.subtle.importKey('pkcs8', pkcs8, 'Ed25519', true, ['sign']);
  const jwk = await crypto.subtle.exportKey('jwk', probe);
  const publicHex = toHex(b64urlToBytes(jwk.x));
  const privateKey = await crypto.subtle.importKey('pkcs8', pkcs8, 'Ed25519', false, ['sign']);
  const studyBase = await crypto.subtle.importKey('raw', seed, 'HKDF', false, ['deriveBits']);
  return { privateKey, publicHex, studyBase };
}

export function newSeed() {
  return crypto.getRandomValues(new Uint8Array(32));
}

/** signing_message(domain, chain_id, message) of docs/protocol.md section 3. */
export function signingMessage(domain, chainId, message) {
  return concat(utf8(`CareLedger/${domain}/v1`), new Uint8Array([0]), utf8(chainId), new Uint8Array([0]), message);
}

export async function sign(privateKey, domain, chainId, message) {
  const sig = await crypto.subtle.sign('Ed25519', privateKey, signingMessage(domain, chainId, message));
  return toHex(new Uint8Array(sig));
}

export async function verify(publicHex, signatureHex, domain, chainId, message) {
  try {
    const pub = await crypto.subtle.importKey('raw', fromHex(publicHex), 'Ed25519', false, ['verify']);
    return await crypto.subtle.verify('Ed25519', pub, fromHex(signatureHex), signingMessage(domain, chainId, message));
  } catch {
    return false;
  }
}

/** Parse a key file's text (version 1 plain or version 2 encrypted); returns the decoded document. */
export function parseKeyFile(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new KeyFileError('not a CareLedger key file');
  }
  if (!doc || doc.kind !== 'ed25519' || (doc.version !== 1 && doc.version !== 2)) {
    throw new KeyFileError('not a CareLedger key file');
  }
  return doc;
}

/** The seed of a version-1 document, checked against its public key. */
export async function seedOfPlain(doc) {
  let seed;
  try {
    seed = fromHex(doc.seed);
  } catch {
    throw new KeyFileError('key file seed is malformed');
  }
  const { publicHex } = await importSeed(seed);
  if (publicHex !== doc.public_key) throw new KeyFileError('key file public key does not match the seed');
  return seed;
}

/** Open a version-2 document: the unlocked key, checked against its public key. */
export async function unlock(doc, passphrase, onProgress) {
  const seed = await (await keycrypt()).decryptKeyfile(doc, passphrase, onProgress);
  const key = await importSeed(seed);
  seed.fill(0);
  if (key.publicHex !== doc.public_key) throw new KeyFileError('key file public key does not match the seed');
  return { ...key, name: doc.name || '' };
}

/** Seal a seed for the store (and for download): a version-2 document. */
export async function seal(seed, passphrase, name, opts) {
  const { publicHex } = await importSeed(seed);
  return (await keycrypt()).encryptKeyfile(seed, publicHex, passphrase, name, opts);
}

export function isEncrypted(doc) {
  return !!doc && typeof doc === 'object' && doc.version === 2 && 'crypto' in doc;
}

export { KeyFileError };

// -- the key store (IndexedDB): sealed documents only -------------------------------------------------------

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'public_key' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function withStore(mode, fn) {
  const db = await openDb();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const result = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(result.result ?? result);
      tx.onerror = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export async function storedKeys() {
  const all = await withStore('readonly', (s) => s.getAll());
  return (all || []).sort((a, b) => (a.name || '').localeCompare(b.name || ''));
}

export async function storeKey(doc) {
  if (!isEncrypted(doc)) throw new KeyFileError('only sealed keys are stored');
  await withStore('readwrite', (s) => s.put(doc));
}

export async function forgetKey(publicHex) {
  await withStore('readwrite', (s) => s.delete(publicHex));
}
