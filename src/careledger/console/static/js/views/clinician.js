// The clinician's view: find a patient's records across custodians (what consent or an open
// break-glass session covers), open one with its integrity shown, and break the glass with a coded
// reason and a visible timer. Every read is audited by the custodian's gateway and shows in the
// patient's access log.

import * as api from '../api.js';
import { act, clear, field, h, notice, receiptView, table } from '../dom.js';
import { t } from '../i18n.js';
import { request, send, signer } from '../ledger.js';
import { readRecords, recordCard } from '../records.js';
import { session } from '../session.js';
import { PURPOSES } from './patient.js';

const REASONS = ['unconscious', 'life_threatening', 'urgent_treatment', 'unable_to_consent', 'other'];
const state = { patient: '', purpose: 'TREAT', glass: new Map() }; // glass: patient -> expires_ms
let ticker = null;

function remaining(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

function timerView(patient) {
  const expires = state.glass.get(patient);
  if (!expires) return null;
  const clock = h('span', { class: 'timer', role: 'timer', id: 'glass-timer', 'aria-live': 'off' }, remaining(expires - Date.now()));
  clearInterval(ticker);
  ticker = setInterval(() => {
    const left = expires - Date.now();
    clock.textContent = remaining(left);
    if (left <= 0) {
      clearInterval(ticker);
      clock.parentElement?.replaceWith(notice('info', t('cl.glass.expired')));
    }
  }, 1000);
  return h('div', { class: 'notice notice-warn', id: 'glass-banner' }, h('strong', {}, t('cl.glass.open')), ' ', t('cl.glass.left'), ' ', clock);
}

export async function render(main) {
  clear(main, h('h1', {}, t('cl.title')), h('p', { class: 'lead' }, t('cl.lead')));
  if (!session.key) {
    main.append(notice('info', t('need.key'), ' ', h('a', { href: '#/keys' }, t('key.load'))));
    return;
  }
  const who = h('input', { type: 'text', id: 'cl-patient', class: 'wide', value: state.patient, required: true, pattern: 'pt-[0-9a-f]{32}', autocomplete: 'off' });
  const purpose = h('select', { id: 'cl-purpose' }, PURPOSES.map((p) => h('option', { value: p, selected: p === state.purpose }, t(`purpose.${p}`))));
  const emergency = h('input', { type: 'checkbox', id: 'cl-emergency' });
  const results = h('div', { id: 'cl-results', 'aria-live': 'polite' });
  const opened = h('div', { id: 'cl-record', 'aria-live': 'polite' });
  const glassSlot = h('div', {});
  const find = h('button', { type: 'submit', id: 'cl-find' }, t('cl.find'));

  const search = () => act(results, find, async () => {
    state.patient = who.value.trim();
    state.purpose = purpose.value;
    clear(glassSlot, timerView(state.patient));
    if (state.glass.get(state.patient) > Date.now()) emergency.checked = true;
    const doc = await api.recordsQuery(request('index', { emergency: emergency.checked, patient: state.patient, purpose: purpose.value }), await signer());
    const rows = doc.records.map((r) => {
      const open = h('button', { type: 'button', class: 'small', 'aria-label': t('pt.open.label', { type: r.type, date: r.date }) }, t('pt.open'));
      open.addEventListener('click', () => act(opened, open, async () => {
        const fetched = await readRecords({ custodian: r.custodian, patient: state.patient, records: [r.record], purpose: purpose.value, emergency: emergency.checked });
        return h('div', {}, fetched.map(recordCard));
      }));
      return h('tr', {}, h('td', {}, r.custodian), h('td', {}, r.type), h('td', {}, r.date), h('td', {}, String(r.version)), h('td', {}, open));
    });
    return h('div', {}, doc.records.length ? null : notice('info', t('cl.none')),
      table(t('cl.caption', { n: doc.records.length }), [t('col.custodian'), t('col.type'), t('col.date'), t('col.version'), t('col.actions')], rows));
  });

  const custodian = h('input', { type: 'text', id: 'cl-custodian', required: true, pattern: '[a-z0-9][a-z0-9.\\-]{1,62}', autocomplete: 'off' });
  const recordId = h('input', { type: 'text', id: 'cl-record-id', class: 'wide', required: true, pattern: 'r-[0-9a-f]{32}', autocomplete: 'off', spellcheck: 'false' });
  const openBtn = h('button', { type: 'submit', id: 'cl-open-id', class: 'secondary' }, t('pt.open'));
  const byId = h('form', {
    class: 'inline',
    onsubmit: (e) => {
      e.preventDefault();
      act(opened, openBtn, async () => {
        state.patient = who.value.trim();
        if (!state.patient) throw new Error(t('cl.patient.needed'));
        const fetched = await readRecords({ custodian: custodian.value.trim(), patient: state.patient, records: [recordId.value.trim()], purpose: purpose.value, emergency: emergency.checked });
        return h('div', {}, fetched.map(recordCard));
      });
    },
  }, field(t('col.custodian'), custodian), field(t('cl.record.id'), recordId, t('cl.record.hint')), openBtn);

  const reason = h('select', { id: 'bg-reason' }, REASONS.map((r) => h('option', { value: r }, t(`bg.${r}`))));
  const minutes = h('input', { type: 'number', id: 'bg-minutes', min: 1, max: 240, value: 60, required: true });
  const glassOut = h('div', { 'aria-live': 'polite' });
  const glassBtn = h('button', { type: 'submit', id: 'bg-open', class: 'danger' }, t('cl.glass.button'));
  const glassForm = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      act(glassOut, glassBtn, async () => {
        state.patient = who.value.trim();
        if (!state.patient) throw new Error(t('cl.patient.needed'));
        if (!confirm(t('cl.glass.confirm'))) return undefined;
        const result = await send('consent.break_glass', { minutes: Number(minutes.value), patient: state.patient, reason: reason.value });
        if (result.receipt.code === 0) {
          state.glass.set(state.patient, result.receipt.result.expires_ms);
          emergency.checked = true;
          clear(glassSlot, timerView(state.patient));
        }
        return receiptView(result);
      });
    },
  }, field(t('cl.glass.reason'), reason, t('cl.glass.reason.hint')), field(t('cl.glass.minutes'), minutes), glassBtn);

  main.append(
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); search(); } },
      field(t('pt.patient'), who), field(t('col.purpose'), purpose),
      h('div', { class: 'field' }, h('label', { class: 'check', for: 'cl-emergency' }, emergency, ' ', t('cl.emergency'))), find),
    glassSlot, results, h('details', {}, h('summary', {}, t('cl.byid')), byId), opened,
    h('section', { 'aria-labelledby': 'bg-h', class: 'glass' }, h('h2', { id: 'bg-h' }, t('cl.glass.title')), h('p', {}, t('cl.glass.body')), glassForm, glassOut));
  if (state.patient) await search();
}
