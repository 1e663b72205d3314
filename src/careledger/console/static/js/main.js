// The console's shell: header (chain, unlocked key, language), the secure-context banner, the role tabs
// and hash routing (#/patient, #/clinician, ...). Each view is a module with render(main).

import { clear, h, short } from './dom.js';
import { lang, loadCatalogue, onLangChange, setLang, t } from './i18n.js';
import { signingSupport } from './keys.js';
import { chainInfo } from './ledger.js';
import { onSessionChange, session, setKey } from './session.js';
// Views load on first use, so the first page load fetches only the shell and the view shown.
export const VIEWS = [
  ['keys', () => import('./views/keys.js')], ['patient', () => import('./views/patient.js')],
  ['myclaims', () => import('./views/my_claims.js')], ['participation', () => import('./views/participation.js')],
  ['clinician', () => import('./views/clinician.js')], ['pharmacist', () => import('./views/pharmacist.js')],
  ['supply', () => import('./views/supply.js')], ['claims', () => import('./views/claims.js')],
  ['research', () => import('./views/research.js')], ['trials', () => import('./views/trials.js')],
  ['explorer', () => import('./views/explorer.js')],
  ['about', () => import('./views/about.js')],
];

const main = document.getElementById('main');

function current() {
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  return VIEWS.find(([n]) => n === name) ? name : 'keys';
}

function renderTabs() {
  const name = current();
  clear(document.getElementById('tabs'), VIEWS.map(([n]) => h('li', {},
    h('a', { href: `#/${n}`, 'aria-current': n === name ? 'page' : null, id: `tab-${n}` }, t(`nav.${n}`)))));
  document.getElementById('nav').setAttribute('aria-label', t('nav.label'));
}

function renderStatic() {
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  document.title = t('app.doctitle');
  document.getElementById('lang').value = lang();
}

function renderKeybar() {
  const bar = document.getElementById('keybar');
  if (!session.key) {
    clear(bar, h('span', { class: 'muted' }, t('key.none')), ' ', h('a', { href: '#/keys' }, t('key.load')));
    return;
  }
  const info = session.info;
  const who = info ? `${info.kind}${info.org ? ' · ' + info.org : ''}${info.roles?.length ? ' · ' + info.roles.join(', ') : ''}` : t('key.unregistered');
  clear(bar,
    h('span', { class: 'key-name' }, session.key.name || t('key.unnamed')), ' ',
    h('code', { title: session.key.publicHex }, short(session.key.publicHex, 12)), ' ',
    h('span', { class: 'muted', id: 'whoami' }, who), ' ',
    h('button', { type: 'button', class: 'link', onclick: () => setKey(null) }, t('key.lock')));
}

async function renderChain() {
  const el = document.getElementById('chain');
  try {
    const s = await chainInfo(true);
    clear(el, t('chain.line', { chain: s.chain_id, engine: s.engine, height: s.height }));
  } catch (exc) {
    clear(el, t('chain.down'));
  }
}

async function renderBanner() {
  const support = await signingSupport();
  const el = document.getElementById('banner');
  if (support === 'ok') {
    clear(el);
    return;
  }
  clear(el, h('div', { class: 'notice notice-error', role: 'alert' },
    h('strong', {}, t(support === 'insecure' ? 'secure.title' : 'secure.noed25519')), ' ',
    t(support === 'insecure' ? 'secure.body' : 'secure.noed25519.body')));
}

let rendering = 0;
async function route() {
  const name = current();
  const load = VIEWS.find(([n]) => n === name)[1];
  renderTabs();
  const ticket = ++rendering;
  try {
    const mod = await load();
    if (ticket !== rendering) return;
    clear(main);
    await mod.render(main);
  } catch (exc) {
    if (ticket === rendering) main.append(h('p', { role: 'alert' }, String(exc?.message || exc)));
  }
  if (ticket === rendering) document.body.dataset.ready = '1';
}

document.getElementById('lang').addEventListener('change', (e) => setLang(e.target.value));
onLangChange(async (l) => {
  await loadCatalogue(l);
  renderStatic();
  renderKeybar();
  renderChain();
  renderBanner();
  route();
});
onSessionChange(() => {
  renderKeybar();
  route();
});
window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});

document.documentElement.lang = lang();
await loadCatalogue(lang());
renderStatic();
renderKeybar();
renderBanner();
renderChain();
route();
