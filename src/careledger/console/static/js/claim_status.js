// A claim's status as the signed claims.status query answers it (docs/claims.md): its parties, state and
// flags, each adjudication with its outcome and line codes (group-CARC / RARC, never an amount), and its
// payments. Shared by the claims desk and the patient's claims.

import { badge, code, fmtDate, fmtTime, h, short, table } from './dom.js';
import { t } from './i18n.js';

const DAY_MS = 86_400_000;
const STATE = { paid: 'ok', adjudicated: 'ok', readjudicated: 'ok', submitted: 'muted', pended: 'warn', appealed: 'warn', voided: 'bad', replaced: 'muted' };
const editSet = (e) => (!e ? '—' : typeof e === 'object' ? [e.name, e.version].filter(Boolean).join(' ') : String(e));
const OUTCOME = { approved: 'ok', partial: 'warn', denied: 'bad', pended: 'warn' };

export const dayText = (day) => fmtDate(day * DAY_MS);
export const stateBadge = (status) => badge(STATE[status] || 'muted', t(`claim.state.${status}`, {}, status));

/** The claim's status view; `extra(adjudication)` adds actions to each adjudication (e.g. open its EOB). */
export function claimStatusView(doc, extra = () => null) {
  const c = doc.claim;
  return h('div', { class: 'claim-status' },
    h('p', { class: 'claim-line' }, t('claim.line', { id: c.id, provider: c.provider, insurer: c.insurer, from: dayText(c.start_day), to: dayText(c.end_day), lines: c.lines }),
      ' ', stateBadge(c.status), c.flags.map((f) => [' ', badge('bad', t(`claim.flag.${f}`, {}, f))])),
    doc.adjudications.map((a) => h('div', { class: 'adjudication' },
      h('h4', {}, t('claim.adjudication', { n: a.n, when: fmtTime(a.time_ms), by: short(a.by, 12) }), ' ',
        badge(OUTCOME[a.outcome] || 'muted', t(`claim.outcome.${a.outcome}`, {}, a.outcome))),
      table(t('claim.lines'), [t('claim.col.line'), t('col.outcome'), t('claim.col.codes')],
        a.lines.map((x) => h('tr', {}, h('td', {}, String(x.sequence)), h('td', {}, t(`claim.outcome.${x.outcome}`, {}, x.outcome)),
          h('td', {}, x.codes.length ? x.codes.map((k) => [code(k), ' ']) : '—')))),
      h('p', { class: 'small' }, t('claim.rules', { plan: a.plan || '—', version: a.plan_version ?? '—', edits: editSet(a.edit_set) })),
      extra(a))),
    doc.payments.length ? h('p', { class: 'claim-paid' }, t('claim.payments', { n: doc.payments.length }), ' ',
      doc.payments.map((p) => code(short(p.remittance, 16)))) : null);
}
