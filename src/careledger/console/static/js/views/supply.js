// The regulator's and manufacturer's view: alerts with filters (a signed read), recalls (listed, and
// a lot recalled), a pack's custody chain drawn as a timeline, and where a lot's packs are.

import * as api from '../api.js';
import { act, badge, clear, code, field, fmtTime, h, notice, receiptView, table } from '../dom.js';
import { t } from '../i18n.js';
import { send, signer } from '../ledger.js';
import { session } from '../session.js';

const KINDS = ['possible_clone', 'stolen_scanned', 'unknown_serial', 'unknown_product', 'decommission_inactive',
  'receipt_by_non_consignee', 'ship_expired_or_recalled'];
const state = { kind: '', since: '', ref: '', gtin: '', lot: '' };

function alertsSection() {
  const out = h('div', { id: 'alerts-out', 'aria-live': 'polite' });
  const kind = h('select', { id: 'alert-kind' }, h('option', { value: '' }, t('sc.kind.all')),
    KINDS.map((k) => h('option', { value: k, selected: k === state.kind }, t(`alert.${k}`))));
  const since = h('input', { type: 'number', id: 'alert-since', min: 0, value: state.since, inputmode: 'numeric' });
  const btn = h('button', { type: 'submit', id: 'load-alerts' }, t('sc.alerts.load'));
  const load = () => act(out, btn, async () => {
    state.kind = kind.value;
    state.since = since.value;
    const doc = await api.alerts({ kind: kind.value || null, since_height: since.value || null }, await signer());
    const rows = [...doc.alerts].reverse().map((a) => h('tr', {},
      h('td', {}, String(a.height)), h('td', {}, fmtTime(a.time_ms)), h('td', {}, badge('bad', t(`alert.${a.kind}`, {}, a.kind))),
      h('td', {}, a.subjects.map((s) => code(s))), h('td', {}, a.org || '—'),
      h('td', {}, a.reasons.join(', ')), h('td', {}, a.nmvs_code || '—')));
    return h('div', {}, h('p', { class: 'small' }, t('sc.alerts.as', { org: doc.org, height: doc.height })),
      table(t('sc.alerts.caption', { n: doc.alerts.length }), [t('col.height'), t('col.when'), t('col.kind'), t('col.subjects'), t('col.org'), t('col.reasons'), 'NMVS'], rows));
  });
  return h('section', { 'aria-labelledby': 'alerts-h' }, h('h2', { id: 'alerts-h' }, t('sc.alerts')),
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); load(); } },
      field(t('col.kind'), kind), field(t('sc.since'), since), btn), out);
}

function recallsSection() {
  const out = h('div', { id: 'recalls-out', 'aria-live': 'polite' });
  const listBtn = h('button', { type: 'button', id: 'load-recalls', class: 'secondary' }, t('sc.recalls.load'));
  const list = () => act(out, listBtn, async () => {
    const doc = await api.recalls();
    return h('div', {},
      table(t('sc.recalls.lots'), [t('col.product'), 'GTIN', t('ph.lot'), t('ph.expiry'), t('col.packs'), t('col.reason'), t('col.when'), t('col.org')],
        doc.lots.map((l) => h('tr', {}, h('td', {}, l.product || '—'), h('td', {}, code(l.gtin)), h('td', {}, l.lot), h('td', {}, l.expiry),
          h('td', {}, String(l.packs)), h('td', {}, l.reason || '—'), h('td', {}, fmtTime(l.recalled_at)), h('td', {}, l.recalled_by || '—')))),
      table(t('sc.recalls.products'), [t('col.product'), 'GTIN', t('col.reason'), t('col.when')],
        doc.products.map((p) => h('tr', {}, h('td', {}, p.name || '—'), h('td', {}, code(p.gtin)), h('td', {}, p.reason || '—'), h('td', {}, fmtTime(p.withdrawn_at))))));
  });
  listBtn.addEventListener('click', list);
  const gtin = h('input', { type: 'text', id: 'recall-gtin', required: true, pattern: '[0-9]{8,14}', inputmode: 'numeric', autocomplete: 'off' });
  const lot = h('input', { type: 'text', id: 'recall-lot', required: true, maxlength: 20, autocomplete: 'off' });
  const reason = h('input', { type: 'text', id: 'recall-reason', required: true, maxlength: 200, autocomplete: 'off' });
  const recallOut = h('div', { 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', id: 'recall', class: 'danger' }, t('sc.recall.button'));
  const form = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      act(recallOut, btn, async () => {
        if (!confirm(t('sc.recall.confirm', { lot: lot.value }))) return undefined;
        const result = await send('supply.recall_lot', { gtin: gtin.value.trim(), lot: lot.value.trim(), reason: reason.value.trim() });
        if (result.receipt.code === 0) list();
        return receiptView(result);
      });
    },
  }, field('GTIN', gtin), field(t('ph.lot'), lot), field(t('col.reason'), reason), btn);
  return h('section', { 'aria-labelledby': 'recalls-h' }, h('h2', { id: 'recalls-h' }, t('sc.recalls')), listBtn, out,
    session.key ? [h('h3', {}, t('sc.recall.title')), form, recallOut] : null);
}

function timeline(it) {
  return h('ol', { class: 'timeline', id: 'custody-timeline', 'aria-label': t('sc.timeline.label', { ref: it.ref }) },
    it.history.map((e) => h('li', { class: `tl-${e.op}` },
      h('span', { class: 'tl-dot', 'aria-hidden': 'true' }),
      h('div', { class: 'tl-body' },
        h('strong', {}, t(`op.${e.op}`, {}, e.op)), ' · ', e.org, h('br'),
        h('span', { class: 'small' }, `${fmtTime(e.at_ms)} · ${t('col.height')} ${e.height}`),
        e.detail !== null && e.detail !== undefined ? h('span', { class: 'small' }, ` · ${typeof e.detail === 'object' ? JSON.stringify(e.detail) : e.detail}`) : null))));
}

function custodySection() {
  const out = h('div', { id: 'custody-out', 'aria-live': 'polite' });
  const ref = h('input', { type: 'text', id: 'custody-ref', class: 'wide', value: state.ref, required: true, autocomplete: 'off', spellcheck: 'false' });
  const btn = h('button', { type: 'submit', id: 'load-custody' }, t('sc.custody.load'));
  const load = () => act(out, btn, async () => {
    state.ref = ref.value.trim();
    const it = await api.item(state.ref);
    return h('div', {},
      h('p', {}, t('sc.custody.now', { state: t(`packstate.${it.state}`, {}, it.state), holder: it.holder }),
        it.in_transit_to ? [' ', badge('warn', t('sc.transit', { to: it.in_transit_to }))] : null,
        it.lot_status === 'recalled' ? [' ', badge('bad', t('sc.recalled'))] : null),
      timeline(it));
  });
  return h('section', { 'aria-labelledby': 'custody-h' }, h('h2', { id: 'custody-h' }, t('sc.custody')),
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); load(); } }, field(t('sc.custody.ref'), ref, t('sc.custody.hint')), btn), out);
}

function bars(caption, counts) {
  const total = Object.values(counts).reduce((a, b) => a + b, 0) || 1;
  return table(caption, [t('col.where'), t('col.packs'), t('col.share')], Object.entries(counts).map(([k, n]) => h('tr', {},
    h('td', {}, t(`packstate.${k}`, {}, k)), h('td', {}, String(n)),
    h('td', {}, h('span', { class: 'bar', dataset: { pct: String(Math.round((100 * n) / total)) } }), ` ${Math.round((100 * n) / total)} %`))));
}

function distributionSection() {
  const out = h('div', { id: 'dist-out', 'aria-live': 'polite' });
  const gtin = h('input', { type: 'text', id: 'dist-gtin', value: state.gtin, required: true, pattern: '[0-9]{8,14}', inputmode: 'numeric', autocomplete: 'off' });
  const lot = h('input', { type: 'text', id: 'dist-lot', value: state.lot, required: true, maxlength: 20, autocomplete: 'off' });
  const btn = h('button', { type: 'submit', id: 'load-dist' }, t('sc.dist.load'));
  const load = () => act(out, btn, async () => {
    state.gtin = gtin.value.trim();
    state.lot = lot.value.trim();
    const d = await api.lotDistribution(state.gtin, state.lot);
    const view = h('div', {},
      h('p', {}, t('sc.dist.summary', { packs: d.packs, lot: d.lot, expiry: d.expiry }), ' ', d.status === 'recalled' ? badge('bad', t('sc.recalled')) : null),
      bars(t('sc.dist.holders'), d.by_holder), bars(t('sc.dist.states'), d.by_state),
      Object.keys(d.in_transit_to).length ? bars(t('sc.dist.transit'), d.in_transit_to) : null,
      d.truncated ? notice('info', t('sc.dist.truncated')) : null);
    for (const bar of view.querySelectorAll('.bar')) bar.style.width = `${bar.dataset.pct}%`;
    return view;
  });
  return h('section', { 'aria-labelledby': 'dist-h' }, h('h2', { id: 'dist-h' }, t('sc.dist')),
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); load(); } }, field('GTIN', gtin), field(t('ph.lot'), lot), btn), out);
}

export async function render(main) {
  clear(main, h('h1', {}, t('sc.title')), h('p', { class: 'lead' }, t('sc.lead')));
  main.append(session.key ? alertsSection() : notice('info', t('sc.alerts.key')), recallsSection(), custodySection(), distributionSection());
}
