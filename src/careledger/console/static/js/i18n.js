// Messages in two catalogues (i18n/en.js, i18n/zh-CN.js, with the same keys); the language comes from
// the user's choice, else the browser's languages. Changing it re-renders the current view.

import en from './i18n/en.js';
import zh from './i18n/zh-CN.js';

export const CATALOGUES = { en, 'zh-CN': zh };
const STORAGE = 'careledger-console-lang';
let current = null;
const listeners = new Set();

export function detect(languages = navigator.languages || [navigator.language]) {
  for (const l of languages) {
    const low = String(l).toLowerCase();
    if (low.startsWith('zh')) return 'zh-CN';
    if (low.startsWith('en')) return 'en';
  }
  return 'en';
}

export function lang() {
  if (!current) {
    let saved = null;
    try {
      saved = localStorage.getItem(STORAGE);
    } catch {
      saved = null;
    }
    current = CATALOGUES[saved] ? saved : detect();
  }
  return current;
}

export function setLang(l) {
  if (!CATALOGUES[l]) return;
  current = l;
  try {
    localStorage.setItem(STORAGE, l);
  } catch {
    /* private mode: the choice lasts for this page */
  }
  document.documentElement.lang = l;
  for (const fn of listeners) fn(l);
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/** The message `key` with {name} placeholders filled; `fallback` (else the key) when it is missing. */
export function t(key, vars = {}, fallback) {
  const msg = CATALOGUES[lang()][key] ?? CATALOGUES.en[key] ?? (fallback !== undefined ? fallback : key);
  return msg.replace(/\{(\w+)\}/g, (_, k) => (vars[k] !== undefined ? String(vars[k]) : `{${k}}`));
}
