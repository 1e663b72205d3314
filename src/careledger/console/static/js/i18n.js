// Messages in two catalogues (i18n/en.js, i18n/zh-CN.js, with the same keys); the language comes from
// the user's choice, else the browser's languages. Changing it re-renders the current view. English
// is always loaded (the fallback); the Chinese catalogue is loaded when it is first chosen.

import en from './i18n/en.js';

export const LANGUAGES = ['en', 'zh-CN'];
export const CATALOGUES = { en };
const LOADERS = { 'zh-CN': () => import('./i18n/zh-CN.js') };

/** Make sure the catalogue of `l` is loaded (call before rendering in it). */
export async function loadCatalogue(l) {
  if (!CATALOGUES[l] && LOADERS[l]) CATALOGUES[l] = (await LOADERS[l]()).default;
}
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
    current = LANGUAGES.includes(saved) ? saved : detect();
  }
  return current;
}

export function setLang(l) {
  if (!LANGUAGES.includes(l)) return;
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
  const msg = CATALOGUES[lang()]?.[key] ?? CATALOGUES.en[key] ?? (fallback !== undefined ? fallback : key);
  return msg.replace(/\{(\w+)\}/g, (_, k) => (vars[k] !== undefined ? String(vars[k]) : `{${k}}`));
}
