// A few DOM helpers: h() builds elements (text only: nothing from the network is ever parsed as HTML).

import { t, lang } from './i18n.js';

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let ids = 0;
export const uid = (p = 'f') => `${p}-${++ids}`;

/** A labelled form field: label + control (+ optional hint), wired with for/id and aria-describedby. */
export function field(labelText, control, hint) {
  const id = control.id || (control.id = uid());
  const out = h('div', { class: 'field' }, h('label', { for: id }, labelText), control);
  if (hint) {
    const hid = uid('hint');
    control.setAttribute('aria-describedby', hid);
    out.append(h('p', { class: 'hint', id: hid }, hint));
  }
  return out;
}

export function table(caption, headers, rows, opts = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: opts.class || '' },
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length, class: 'empty' }, t('common.none'))))));
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toLocaleString(lang() === 'zh-CN' ? 'zh-CN' : 'en-GB', { timeZone: 'UTC', hour12: false }) + ' UTC';
}

export function fmtDate(ms) {
  if (ms === null || ms === undefined) return '—';
  return new Date(ms).toISOString().slice(0, 10);
}

export function short(hex, n = 10) {
  return typeof hex === 'string' && hex.length > n + 2 ? hex.slice(0, n) + '…' : hex ?? '—';
}

export function code(text) {
  return h('code', {}, text);
}

export function badge(kind, text) {
  return h('span', { class: `badge badge-${kind}` }, text);
}

/** A live region message: `kind` ok | error | info. */
export function notice(kind, ...children) {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

/** The answer of a committed transaction: receipt code and name, block height, hash. */
export function receiptView(result) {
  const r = result.receipt;
  const ok = r.code === 0;
  return notice(ok ? 'ok' : 'error',
    h('strong', {}, ok ? t('tx.committed') : t('tx.refused', { name: r.name, code: r.code })),
    ' ', t('tx.where', { height: result.height }), ' ', h('code', { class: 'hash' }, result.tx_hash),
    r.message ? h('div', { class: 'small' }, r.message) : null);
}

export function errorView(exc) {
  const name = exc?.name && exc.name !== 'Error' ? exc.name : 'ERROR';
  const codeText = exc?.code !== undefined ? ` (${exc.code})` : '';
  const known = exc?.name ? t(`err.${exc.name}`, {}, '') : '';
  return notice('error', h('strong', {}, `${name}${codeText}`), ' ', known || exc?.message || String(exc));
}

/** Run `fn` and show its outcome in `out` (busy state on `button`). */
export async function act(out, button, fn) {
  if (button) button.disabled = true;
  out.setAttribute('aria-busy', 'true');
  try {
    const view = await fn();
    if (view !== undefined) clear(out, view);
  } catch (exc) {
    clear(out, errorView(exc));
  } finally {
    if (button) button.disabled = false;
    out.removeAttribute('aria-busy');
  }
}
