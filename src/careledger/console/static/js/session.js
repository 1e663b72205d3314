// The unlocked key of this tab (memory only) and who it is on the ledger.

import * as api from './api.js';

const listeners = new Set();
export const session = { key: null, info: null };

export class NoKeyError extends Error {}

export function requireKey() {
  if (!session.key) throw new NoKeyError('no key is unlocked');
  return session.key;
}

export async function setKey(key) {
  session.key = key;
  session.info = null;
  if (key) {
    try {
      session.info = await api.keyInfo(key.publicHex);
    } catch {
      session.info = null; // not on the ledger yet (a new patient key)
    }
  }
  for (const fn of listeners) fn(session);
}

export async function refreshInfo() {
  await setKey(session.key);
}

export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
