// The claims staff's view (an insurer's or provider's claims officer): the insurer's flag feed and a
// claim's status (signed claim queries), decisions — record its payment, flag a mismatch the intake
// found, void a claim entered in error — each a transaction signed in the page; and the rule data a
// decision rests on, which is about no one: a plan's benefit rules and the edit tables with their votes.

import * as api from '../api.js';
import { act, badge, clear, code, field, fmtDate, fmtTime, h, notice, receiptView, short, table } from '../dom.js';
import { t } from '../i18n.js';
import { send, signer } from '../ledger.js';
import { claimStatusView } from '../claim_status.js';
import { session } from '../session.js';
import { sha256Hex } from '../bytes.js';

const state = { claim: '', insurer: '', plan: '', table: 'synthetic-practitioner' };
const CLAIM = 'clm-[0-9a-f]{24}';
const HEX32 = '[0-9a-f]{64}';
const money = (minor, currency) => (minor === null || minor === undefined ? '—' : `${(minor / 100).toFixed(2)} ${currency}`);
const day = (n) => fmtDate(n * 86_400_000);
const pct = (bps) => `${(bps / 100).toFixed(bps % 100 ? 2 : 0)} %`;

function claimField(id) {
  return h('input', { type: 'text', id, class: 'wide', value: state.claim, required: true, pattern: CLAIM, autocomplete: 'off', spellcheck: 'false' });
}

function queueSection() {
  const out = h('div', { id: 'flags-out', 'aria-live': 'polite' });
  const insurer = h('input', { type: 'text', id: 'flags-insurer', value: session.info?.org || '', required: true, autocomplete: 'off' });
  const btn = h('button', { type: 'submit', id: 'load-flags' }, t('cs.flags.load'));
  const form = h('form', {
    class: 'inline',
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        const doc = await api.claimFlags(insurer.value.trim(), await signer());
        return table(t('cs.flags.caption', { n: doc.flags.length, insurer: doc.insurer }), [t('col.height'), t('col.when'), t('col.kind'), t('cs.claim'), t('cs.col.other')],
          [...doc.flags].reverse().map((f) => h('tr', {}, h('td', {}, String(f.height)), h('td', {}, fmtTime(f.time_ms)),
            h('td', {}, badge('bad', t(`claim.flag.${f.kind}`, {}, f.kind))), h('td', {}, code(f.claim)),
            h('td', {}, f.other_claim ? [code(f.other_claim), ` (${f.other_insurer})`] : '—'))));
      });
    },
  }, field(t('cs.insurer'), insurer), btn);
  return h('section', { 'aria-labelledby': 'cs-flags-h' }, h('h2', { id: 'cs-flags-h' }, t('cs.flags')), h('p', {}, t('cs.flags.body')), form, out);
}

function statusSection() {
  const out = h('div', { id: 'status-out', 'aria-live': 'polite' });
  const claim = claimField('status-claim');
  const btn = h('button', { type: 'submit', id: 'load-status' }, t('cs.status.load'));
  const form = h('form', {
    class: 'inline',
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        state.claim = claim.value.trim();
        const doc = await api.claimStatus(state.claim, await signer());
        return claimStatusView(doc, (a) => {
          const response = a.documents?.response?.commitment;
          if (!response || !['approved', 'partial'].includes(a.outcome) || doc.claim.status === 'paid') return null;
          const pay = h('button', { type: 'button', class: 'small', id: `prefill-pay-${a.n}` }, t('cs.pay.prefill'));
          pay.addEventListener('click', () => {
            document.getElementById('pay-claim').value = doc.claim.id;
            document.getElementById('pay-remittance').value = response;
            document.getElementById('pay-remittance').focus();
          });
          return pay;
        });
      });
    },
  }, field(t('cs.claim'), claim), btn);
  return h('section', { 'aria-labelledby': 'cs-status-h' }, h('h2', { id: 'cs-status-h' }, t('cs.status')), form, out);
}

function paySection() {
  const out = h('div', { id: 'pay-out', 'aria-live': 'polite' });
  const claim = claimField('pay-claim');
  const remittance = h('input', { type: 'text', id: 'pay-remittance', class: 'wide', required: true, pattern: HEX32, autocomplete: 'off', spellcheck: 'false' });
  const advice = h('input', { type: 'file', id: 'pay-advice' });
  advice.addEventListener('change', async () => {
    const file = advice.files?.[0];
    if (file) remittance.value = await sha256Hex(new Uint8Array(await file.arrayBuffer()));
  });
  const btn = h('button', { type: 'submit', id: 'pay' }, t('cs.pay.button'));
  const form = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        state.claim = claim.value.trim();
        return receiptView(await send('claims.pay', { claim: state.claim, remittance: remittance.value.trim() }));
      });
    },
  }, field(t('cs.claim'), claim, t('cs.claim.hint')), field(t('cs.remittance'), remittance, t('cs.remittance.hint')),
  field(t('cs.advice'), advice, t('cs.advice.hint')), btn);
  return h('section', { 'aria-labelledby': 'cs-pay-h' }, h('h2', { id: 'cs-pay-h' }, t('cs.pay')), h('p', {}, t('cs.pay.body')), form, out);
}

function flagSection() {
  const out = h('div', { id: 'flag-out', 'aria-live': 'polite' });
  const claim = claimField('flag-claim');
  const kind = h('select', { id: 'flag-kind' }, ['content-mismatch', 'fingerprint-mismatch', 'encounter-mismatch'].map((k) => h('option', { value: k }, t(`cs.flag.${k}`))));
  const btn = h('button', { type: 'submit', id: 'flag', class: 'danger' }, t('cs.flag.button'));
  const voidReason = h('select', { id: 'void-reason' }, ['entered_in_error', 'duplicate', 'not_rendered', 'other'].map((k) => h('option', { value: k }, t(`cs.void.${k}`))));
  const voidBtn = h('button', { type: 'button', id: 'void', class: 'danger' }, t('cs.void.button'));
  voidBtn.addEventListener('click', () => act(out, voidBtn, async () => {
    if (!claim.reportValidity()) return undefined;
    return receiptView(await send('claims.void', { claim: claim.value.trim(), reason: voidReason.value }));
  }));
  const form = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => receiptView(await send('claims.flag', { claim: claim.value.trim(), kind: kind.value })));
    },
  }, field(t('cs.claim'), claim), field(t('cs.flag.kind'), kind), btn, ' ', field(t('cs.void.reason'), voidReason), voidBtn);
  return h('section', { 'aria-labelledby': 'cs-flag-h' }, h('h2', { id: 'cs-flag-h' }, t('cs.flag')), h('p', {}, t('cs.flag.body')), form, out);
}

function planView(doc) {
  const latest = doc.versions[doc.versions.length - 1];
  const r = latest.rules;
  return h('div', {},
    h('p', { id: 'plan-summary' }, t('cs.plan.summary', { versions: doc.versions.length, version: latest.version, day: day(latest.effective_day),
      deductible: money(r.deductible, r.currency), days: r.timely_filing_days, edits: r.edit_set || '—' }), ' ', code(short(latest.digest, 16))),
    table(t('cs.plan.categories'), [t('cs.col.category'), t('cs.col.covered'), t('cs.col.copay'), t('cs.col.coinsurance'), t('cs.col.deductible'), t('cs.col.auth')],
      r.categories.map((c) => h('tr', {}, h('td', {}, c.category), h('td', {}, c.covered ? t('cs.yes') : badge('bad', t('cs.excluded'))),
        h('td', {}, money(c.copay, r.currency)), h('td', {}, pct(c.coinsurance_bps)), h('td', {}, c.deductible_applies ? t('cs.yes') : t('cs.no')),
        h('td', {}, c.requires_authorization ? badge('warn', t('cs.auth.required')) : t('cs.no'))))));
}

function rulesSection() {
  const out = h('div', { id: 'plan-out', 'aria-live': 'polite' });
  const insurer = h('input', { type: 'text', id: 'plan-insurer', value: state.insurer || session.info?.org || '', required: true, autocomplete: 'off' });
  const plan = h('input', { type: 'text', id: 'plan-name', value: state.plan, required: true, autocomplete: 'off' });
  const btn = h('button', { type: 'submit', id: 'load-plan' }, t('cs.plan.load'));
  const planForm = h('form', {
    class: 'inline',
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        state.insurer = insurer.value.trim();
        state.plan = plan.value.trim();
        return planView(await api.claimPlan(state.insurer, state.plan));
      });
    },
  }, field(t('cs.insurer'), insurer), field(t('cs.plan.name'), plan), btn);
  const tableOut = h('div', { id: 'table-out', 'aria-live': 'polite' });
  const name = h('input', { type: 'text', id: 'table-name', value: state.table, required: true, autocomplete: 'off' });
  const tableBtn = h('button', { type: 'submit', id: 'load-table', class: 'secondary' }, t('cs.table.load'));
  const tableForm = h('form', {
    class: 'inline',
    onsubmit: (e) => {
      e.preventDefault();
      act(tableOut, tableBtn, async () => {
        state.table = name.value.trim();
        const doc = await api.editTable(state.table);
        return table(t('cs.table.caption', { name: doc.name }), [t('col.version'), t('cs.col.effective'), t('col.status'), t('cs.col.yes'), t('cs.col.no'), t('cs.col.digest')],
          doc.versions.map((v) => h('tr', {}, h('td', {}, v.version), h('td', {}, day(v.effective_day)),
            h('td', {}, v.status === 'approved' ? badge('ok', t('cs.table.approved')) : v.status),
            h('td', {}, v.yes.join(', ') || '—'), h('td', {}, v.no.join(', ') || '—'), h('td', {}, code(short(v.digest, 16))))));
      });
    },
  }, field(t('cs.table.name'), name), tableBtn);
  return h('section', { 'aria-labelledby': 'cs-rules-h' }, h('h2', { id: 'cs-rules-h' }, t('cs.rules')), h('p', {}, t('cs.rules.body')),
    h('h3', {}, t('cs.plan')), planForm, out, h('h3', {}, t('cs.table')), tableForm, tableOut);
}

export async function render(main) {
  clear(main, h('h1', {}, t('cs.title')), h('p', { class: 'lead' }, t('cs.lead')));
  main.append(...(session.key ? [queueSection(), statusSection(), paySection(), flagSection()]
    : [notice('info', t('need.key'), ' ', h('a', { href: '#/keys' }, t('key.load')))]), rulesSection());
}
