// The trial sponsor's view (and anyone's: trial records are public registry data): the registered
// trials with recruitment against target; one trial's registration, sites, protocol versions, subjects
// awaiting re-consent and SUSARs with their ICH E2A deadlines; and the sponsor's decision on
// recruitment (trials.set_recruitment_status, signed in the page).

import * as api from '../api.js';
import { act, badge, clear, code, field, fmtTime, h, notice, receiptView, short, table } from '../dom.js';
import { t } from '../i18n.js';
import { send } from '../ledger.js';
import { session } from '../session.js';

const RECRUITMENT = ['pending', 'recruiting', 'suspended', 'complete', 'other'];
let chosen = null;

function recruitmentBadge(status) {
  const kind = { recruiting: 'ok', suspended: 'warn', complete: 'muted' }[status] || 'muted';
  return badge(kind, t(`tr.recruitment.${status}`, {}, status));
}

function reportState(s, which) {
  const state = s[which];
  if (state === 'overdue') return badge('bad', t('tr.overdue'));
  return t(`tr.report.${state}`, {}, state);
}

function recruitmentForm(trial, current, reload) {
  const out = h('div', { id: 'recruit-out', 'aria-live': 'polite' });
  const status = h('select', { id: 'recruit-status' }, RECRUITMENT.map((s) => h('option', { value: s, selected: s === current }, t(`tr.recruitment.${s}`))));
  const reason = h('input', { type: 'text', id: 'recruit-reason', class: 'wide', required: true, maxlength: 500, autocomplete: 'off' });
  const btn = h('button', { type: 'submit', id: 'recruit' }, t('tr.recruit.button'));
  return h('div', {}, h('h3', {}, t('tr.recruit')), h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        const result = await send('trials.set_recruitment_status', { reason: reason.value.trim(), status: status.value, trial });
        if (result.receipt.code === 0) setTimeout(() => reload(receiptView(result)), 0);
        return receiptView(result);
      });
    },
  }, field(t('tr.recruit.status'), status), field(t('col.reason'), reason, t('tr.recruit.hint')), btn), out);
}

async function trialDetail(trial, reload) {
  const [reg, sites, protocols, reconsent, safety] = await Promise.all([api.trial(trial), api.trialSites(trial),
    api.trialProtocols(trial), api.trialReconsent(trial), api.trialSafety(trial)]);
  const s = reg.status;
  const mine = session.info?.org && session.info.org === reg.sponsor;
  return h('div', { id: 'trial-detail' },
    h('h3', {}, reg.dataset.public_title),
    h('p', { id: 'trial-status' }, t('tr.status.line', { trial: short(trial, 14), sponsor: reg.sponsor, enrolled: s.enrolled, target: s.target,
      version: reg.version, protocol: s.protocol_version }), ' ', recruitmentBadge(s.recruitment), s.lock ? [' ', badge('warn', t('tr.locked'))] : null),
    table(t('tr.sites'), [t('col.org'), t('col.status'), t('tr.col.ethics'), t('tr.col.investigators')],
      sites.sites.map((x) => h('tr', {}, h('td', {}, x.org), h('td', {}, x.status), h('td', {}, `${x.ethics.committee} · ${x.ethics.reference || '—'}`),
        h('td', {}, x.investigators.map((i) => [code(short(i.key, 10)), ` ${i.role} `]))))),
    table(t('tr.protocols'), [t('col.version'), t('tr.col.document'), t('tr.col.reconsent'), t('col.reason')],
      protocols.versions.map((p) => h('tr', {}, h('td', {}, String(p.version)), h('td', {}, code(short(p.document_hash, 16))),
        h('td', {}, p.reconsent_required ? badge('warn', t('cs.yes')) : t('cs.no')), h('td', {}, p.reason || '—')))),
    table(t('tr.reconsent', { n: reconsent.subjects.length }), [t('tr.col.subject')],
      reconsent.subjects.map((x) => h('tr', {}, h('td', {}, code(x))))),
    table(t('tr.safety', { n: safety.susars.length, overdue: safety.overdue }), [t('tr.col.event'), t('tr.col.site'), t('tr.col.category'), t('tr.col.initial'), t('tr.col.complete')],
      safety.susars.map((x) => h('tr', { class: x.overdue ? 'denied' : '' }, h('td', {}, code(short(x.event, 12))), h('td', {}, x.site), h('td', {}, x.category),
        h('td', {}, reportState(x, 'initial'), h('br'), h('span', { class: 'small' }, fmtTime(x.initial_due_ms))),
        h('td', {}, reportState(x, 'complete'), h('br'), h('span', { class: 'small' }, fmtTime(x.complete_due_ms)))))),
    mine ? recruitmentForm(trial, s.recruitment, reload) : null);
}

export async function render(main) {
  clear(main, h('h1', {}, t('tr.title')), h('p', { class: 'lead' }, t('tr.lead')));
  const list = h('div', { id: 'trials-list', 'aria-live': 'polite' });
  const detail = h('div', { id: 'trial-out', 'aria-live': 'polite' });
  main.append(h('section', { 'aria-labelledby': 'tr-list-h' }, h('h2', { id: 'tr-list-h' }, t('tr.registry')), list),
    h('section', { 'aria-labelledby': 'tr-one-h' }, h('h2', { id: 'tr-one-h' }, t('tr.one')), detail));
  const open = (trial, button, flash) => act(detail, button, async () => {
    chosen = trial;
    const shown = await trialDetail(trial, (view) => open(trial, null, view));
    if (flash) shown.querySelector('#recruit-out')?.append(flash);
    return shown;
  });
  await act(list, null, async () => {
    const doc = await api.trials();
    return table(t('tr.registry.caption', { n: doc.trials.length }), [t('tr.col.title'), t('tr.col.sponsor'), t('tr.col.recruitment'), t('tr.col.enrolment'), t('col.actions')],
      doc.trials.map((x) => {
        const btn = h('button', { type: 'button', class: 'small', 'aria-label': t('tr.open.label', { title: x.public_title }) }, t('tr.open'));
        btn.addEventListener('click', () => open(x.trial, btn));
        return h('tr', {}, h('td', {}, x.public_title), h('td', {}, x.sponsor), h('td', {}, recruitmentBadge(x.recruitment)),
          h('td', {}, `${x.enrolled} / ${x.target}`), h('td', {}, btn));
      }));
  });
  if (chosen) open(chosen, null);
  else if (!session.key) detail.append(notice('info', t('tr.key')));
}
