// The patient's research and trials: her research log (the consents she gave under each study or
// category pseudonym and every release that included her data) and her participation in each trial
// (consent to the current protocol, enrolment, re-consent due). Every request here is signed with a
// study key derived in this page from her own key (study_keys.js): the node learns that someone holds
// that study key, never who she is, and her pseudonyms cannot be linked to each other.

import * as api from '../api.js';
import { act, badge, clear, code, fmtDate, fmtTime, h, notice, receiptView, short, table } from '../dom.js';
import { t } from '../i18n.js';
import { send, signer } from '../ledger.js';
import { session } from '../session.js';
import { deriveStudyKey, scopeInfo, studyPseudonym } from '../study_keys.js';

let flash = null;

async function studyKey(info) {
  const key = await deriveStudyKey(session.key, info);
  return { key, pseudonym: await studyPseudonym(key.publicHex) };
}

/** Every scope of the registry: each data-sharing study, and each category studies name. */
function scopes(studies) {
  const data = studies.filter((s) => s.kind === 'data');
  const categories = [...new Set(data.map((s) => s.category))].sort();
  return [...data.map((s) => ['study', s.id]), ...categories.map((c) => ['category', c])];
}

async function researchLog() {
  const { studies } = await api.studies();
  const titles = Object.fromEntries(studies.map((s) => [s.id, s.title]));
  const consents = [];
  const releases = [];
  for (const [scope, target] of scopes(studies)) {
    const { key } = await studyKey(scopeInfo(scope, target));
    const doc = await api.researchLog(await signer(key));
    consents.push(...doc.consents);
    releases.push(...doc.releases);
  }
  releases.sort((a, b) => a.height - b.height);
  const target = (c) => (c.scope === 'study' ? titles[c.target] || c.target : t('my.category', { code: c.target }));
  return h('div', { id: 'research-log' },
    h('p', { id: 'research-summary' }, t('my.research.summary', { consents: consents.filter((c) => c.status === 'active').length, releases: releases.length })),
    table(t('my.consents'), [t('my.col.scope'), t('col.types'), t('col.status'), t('col.when')],
      consents.map((c) => h('tr', {}, h('td', {}, target(c)), h('td', {}, c.resource_types.length ? c.resource_types.join(', ') : t('pt.alltypes')),
        h('td', {}, c.status === 'active' ? t('pt.status.active') : badge('muted', t('pt.status.revoked'))), h('td', {}, fmtTime(c.granted_ms))))),
    table(t('my.releases'), [t('col.when'), t('my.col.study'), t('col.custodian'), t('my.col.release')],
      releases.map((r) => h('tr', {}, h('td', {}, r.date || fmtDate(r.time_ms)), h('td', {}, r.title), h('td', {}, r.custodian), h('td', {}, code(short(r.release, 14)))))));
}

async function trialRow(trial, out, reload) {
  const { key, pseudonym } = await studyKey(trial.trial);
  let subject = null;
  try {
    subject = await api.trialSubject(trial.trial, pseudonym);
  } catch (exc) {
    if (exc.status !== 404) throw exc;
  }
  const consent = subject?.consent;
  let state;
  if (consent && consent.status === 'active') {
    state = [t('my.trial.consented', { version: consent.version }), subject.awaiting_reconsent ? [' ', badge('warn', t('my.trial.reconsent'))] : null,
      subject.enrolment ? [' ', badge('ok', t('my.trial.enrolled', { site: subject.enrolment.site }))] : null];
  } else {
    state = consent ? badge('muted', t('my.trial.withdrawn')) : t('my.trial.none');
  }
  let action = '—';
  if ((!consent || consent.status !== 'active' || subject.awaiting_reconsent) && trial.recruitment === 'recruiting') {
    action = h('button', { type: 'button', class: 'small', 'aria-label': t('my.trial.consent.label', { title: trial.public_title }) }, t('my.trial.consent'));
    action.addEventListener('click', () => act(out, action, async () => {
      const protocols = await api.trialProtocols(trial.trial);
      const current = protocols.versions.find((p) => p.version === protocols.current);
      if (!confirm(t('my.trial.confirm', { title: trial.public_title, version: current.version }))) return undefined;
      const result = await send('trials.consent', { consent_form_hash: current.consent_form_hash, protocol_version: current.version, trial: trial.trial }, key);
      if (result.receipt.code === 0) {
        flash = receiptView(result);
        setTimeout(reload, 0);
      }
      return receiptView(result);
    }));
  }
  return h('tr', { dataset: { trial: trial.trial } }, h('td', {}, trial.public_title), h('td', {}, code(short(pseudonym, 14))), h('td', {}, state), h('td', {}, action));
}

export async function render(main) {
  clear(main, h('h1', {}, t('my.title')), h('p', { class: 'lead' }, t('my.lead')));
  if (!session.key) {
    main.append(notice('info', t('need.key'), ' ', h('a', { href: '#/keys' }, t('key.load'))));
    return;
  }
  const trialsOut = h('div', { id: 'my-trials-out', 'aria-live': 'polite' });
  const trials = h('div', { id: 'my-trials', 'aria-live': 'polite' });
  const log = h('div', { id: 'my-research', 'aria-live': 'polite' });
  main.append(h('section', { 'aria-labelledby': 'my-trials-h' }, h('h2', { id: 'my-trials-h' }, t('my.trials')), trials, trialsOut),
    h('section', { 'aria-labelledby': 'my-research-h' }, h('h2', { id: 'my-research-h' }, t('my.research')), log));
  const reload = () => render(main);
  await act(trials, null, async () => {
    const doc = await api.trials();
    const rows = [];
    for (const trial of doc.trials) rows.push(await trialRow(trial, trialsOut, reload));
    return table(t('my.trials.caption'), [t('tr.col.title'), t('my.col.pseudonym'), t('col.status'), t('col.actions')], rows);
  });
  if (flash) {
    trialsOut.append(flash);
    flash = null;
  }
  await act(log, null, researchLog);
}
