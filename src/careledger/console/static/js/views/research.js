// The researcher's view: the study registry (every data-sharing study and trial, public), one study's
// versions and the releases anchored for it, and registering a new data-sharing study for the
// researcher's organisation (research.register_study, signed in the page): what it asks for, the
// ethics approval it rests on and the anonymity every release must reach.

import * as api from '../api.js';
import { act, badge, clear, code, field, fmtDate, fmtTime, h, notice, receiptView, short, table } from '../dom.js';
import { t } from '../i18n.js';
import { send } from '../ledger.js';
import { session } from '../session.js';

const TYPES = ['AllergyIntolerance', 'CarePlan', 'Condition', 'DiagnosticReport', 'Encounter', 'Immunization',
  'MedicationRequest', 'Observation', 'Patient', 'Procedure'];
const DAY_MS = 86_400_000;
let chosen = null;

function studyDetail(doc) {
  const s = doc.study;
  return h('div', { id: 'study-detail' },
    h('h3', {}, s.title),
    h('p', {}, t('rs.study.line', { sponsor: s.sponsor, category: s.category, purpose: t(`purpose.${s.purpose}`), version: s.version,
      k: s.anonymity.k, from: fmtDate(s.period_start_ms), to: fmtDate(s.period_end_ms) }), ' ',
    s.status === 'active' ? badge('ok', t('rs.active')) : badge('muted', t('rs.closed'))),
    h('p', { class: 'small' }, t('rs.requests', { types: s.request.resource_types.join(', '), qi: s.anonymity.quasi_identifiers.join(', ') })),
    table(t('rs.versions'), [t('col.version'), t('col.when'), t('rs.col.consent'), t('col.status')],
      doc.versions.map((v) => h('tr', {}, h('td', {}, String(v.version)), h('td', {}, fmtTime(v.updated_ms)), h('td', {}, String(v.consent_version)), h('td', {}, v.status)))),
    table(t('rs.releases', { n: doc.releases.length }), [t('col.custodian'), t('rs.col.recipient'), t('rs.col.subjects'), t('rs.col.k'), t('col.status'), t('col.when')],
      doc.releases.map((r) => h('tr', {}, h('td', {}, r.custodian), h('td', {}, r.recipient), h('td', {}, `${r.subjects} / ${r.records}`),
        h('td', {}, String(r.k_achieved)), h('td', {}, r.status), h('td', {}, fmtTime(r.time_ms))))));
}

function registerSection(reload) {
  const out = h('div', { id: 'study-out', 'aria-live': 'polite' });
  const title = h('input', { type: 'text', id: 'study-title', class: 'wide', required: true, minlength: 3, maxlength: 120, autocomplete: 'off' });
  const category = h('input', { type: 'text', id: 'study-category', required: true, pattern: '[a-z][a-z0-9\\-]{1,39}', autocomplete: 'off' });
  const ethics = h('input', { type: 'text', id: 'study-ethics', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9 .\\/:_\\-]{1,79}', autocomplete: 'off' });
  const purpose = h('select', { id: 'study-purpose' }, ['HRESCH', 'CLINTRCH'].map((p) => h('option', { value: p }, t(`purpose.${p}`))));
  const days = h('input', { type: 'number', id: 'study-days', min: 1, max: 3650, value: 365, required: true, inputmode: 'numeric' });
  const k = h('input', { type: 'number', id: 'study-k', min: 5, max: 1000, value: 5, required: true, inputmode: 'numeric' });
  const types = TYPES.map((x) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'study-type', value: x, checked: ['Condition', 'Observation', 'Patient'].includes(x) }), ' ', x));
  const btn = h('button', { type: 'submit', id: 'register-study' }, t('rs.register.button'));
  const form = h('form', {
    class: 'grid-form',
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        const chosenTypes = [...form.querySelectorAll('input[name=study-type]:checked')].map((x) => x.value).sort();
        if (!chosenTypes.length) throw new Error(t('rs.types.needed'));
        const start = Math.floor(Date.now() / DAY_MS) * DAY_MS;
        const result = await send('research.register_study', {
          anonymity: { k: Number(k.value), quasi_identifiers: ['birth_year', 'sex', 'zip3'] }, category: category.value.trim(),
          ethics_ref: ethics.value.trim(), period: { end_ms: start + Number(days.value) * DAY_MS, start_ms: start }, purpose: purpose.value,
          request: { resource_types: chosenTypes }, sponsor: session.info?.org || '', title: title.value.trim(),
        });
        if (result.receipt.code === 0) {
          chosen = result.receipt.result?.study || chosen;
          setTimeout(() => reload(receiptView(result)), 0);
        }
        return receiptView(result);
      });
    },
  }, field(t('rs.title.field'), title), field(t('rs.category'), category, t('rs.category.hint')), field(t('rs.ethics'), ethics),
  field(t('col.purpose'), purpose), field(t('rs.days'), days), field(t('rs.k'), k, t('rs.k.hint')),
  h('fieldset', {}, h('legend', {}, t('col.types')), types), h('div', {}, btn));
  return h('section', { 'aria-labelledby': 'rs-new-h' }, h('h2', { id: 'rs-new-h' }, t('rs.register', { org: session.info?.org || '—' })), form, out);
}

export async function render(main, flash = null) {
  clear(main, h('h1', {}, t('rs.title')), h('p', { class: 'lead' }, t('rs.lead')));
  const list = h('div', { id: 'studies-list', 'aria-live': 'polite' });
  const detail = h('div', { id: 'study-view', 'aria-live': 'polite' });
  const reload = (view) => render(main, view);
  main.append(h('section', { 'aria-labelledby': 'rs-list-h' }, h('h2', { id: 'rs-list-h' }, t('rs.registry')), list),
    h('section', { 'aria-labelledby': 'rs-one-h' }, h('h2', { id: 'rs-one-h' }, t('rs.one')), detail));
  const open = (study, button) => act(detail, button, async () => {
    chosen = study;
    return studyDetail(await api.study(study));
  });
  await act(list, null, async () => {
    const doc = await api.studies();
    return table(t('rs.registry.caption', { n: doc.studies.length }), [t('rs.col.title'), t('tr.col.sponsor'), t('col.kind'), t('col.purpose'), t('col.status'), t('col.actions')],
      doc.studies.map((s) => {
        const btn = h('button', { type: 'button', class: 'small', 'aria-label': t('rs.open.label', { title: s.title }) }, t('tr.open'));
        btn.addEventListener('click', () => open(s.id, btn));
        return h('tr', { dataset: { study: s.id } }, h('td', {}, s.title, ' ', code(short(s.id, 10))), h('td', {}, s.sponsor), h('td', {}, t(`rs.kind.${s.kind}`, {}, s.kind)),
          h('td', {}, t(`purpose.${s.purpose}`)), h('td', {}, s.status === 'active' ? badge('ok', t('rs.active')) : badge('muted', t('rs.closed'))), h('td', {}, btn));
      }));
  });
  if (chosen) open(chosen, null);
  const researcher = session.info?.kind === 'admin' || session.info?.roles?.includes('researcher');
  if (session.key && researcher) main.append(registerSection(reload));
  else main.append(notice('info', t('rs.key')));
  if (flash) main.querySelector('#study-out')?.append(flash);
}
