// The patient's claims: every claim billed in her name (the signed claims.list query, as herself), each
// with its status — adjudications with outcomes and line codes, payments — and her Explanation of
// Benefit, read from the insurer's vault through its gateway like any record of hers and shown as
// readable FHIR with its integrity checked against the ledger.

import * as api from '../api.js';
import { act, clear, h, notice, table } from '../dom.js';
import { t } from '../i18n.js';
import { signer } from '../ledger.js';
import { readRecords, recordCard } from '../records.js';
import { session } from '../session.js';
import { claimStatusView, dayText, stateBadge } from '../claim_status.js';

function eobButton(patient, adjudication, out) {
  const eob = adjudication.documents?.eob;
  if (!eob || !eob.custodian || eob.status === 'erased') return null;
  const open = h('button', { type: 'button', class: 'small', id: `open-eob-${adjudication.n}` }, t('mc.eob.open'));
  open.addEventListener('click', () => act(out, open, async () => {
    const fetched = await readRecords({ custodian: eob.custodian, patient, records: [eob.record], purpose: 'PATRQT' });
    return h('div', {}, fetched.map(recordCard));
  }));
  return open;
}

export async function render(main) {
  clear(main, h('h1', {}, t('mc.title')), h('p', { class: 'lead' }, t('mc.lead')));
  const patient = session.info?.pseudonym;
  if (!session.key || !patient) {
    main.append(notice('info', t('mc.key'), ' ', h('a', { href: '#/keys' }, t('key.load'))));
    return;
  }
  const list = h('div', { id: 'my-claims', 'aria-live': 'polite' });
  const detail = h('div', { id: 'my-claim', 'aria-live': 'polite' });
  const eobOut = h('div', { id: 'eob-out', 'aria-live': 'polite' });
  main.append(h('section', { 'aria-labelledby': 'mc-list-h' }, h('h2', { id: 'mc-list-h' }, t('mc.list')), list),
    h('section', { 'aria-labelledby': 'mc-one-h' }, h('h2', { id: 'mc-one-h' }, t('mc.one')), detail, eobOut));
  await act(list, null, async () => {
    const doc = await api.claimList(patient, await signer());
    return table(t('mc.caption', { n: doc.claims.length }), [t('mc.col.service'), t('mc.col.provider'), t('cs.insurer'), t('col.status'), t('col.actions')],
      [...doc.claims].reverse().map((c) => {
        const btn = h('button', { type: 'button', class: 'small', 'aria-label': t('mc.open.label', { provider: c.provider, day: dayText(c.start_day) }) }, t('mc.open'));
        btn.addEventListener('click', () => act(detail, btn, async () => {
          clear(eobOut);
          const status = await api.claimStatus(c.id, await signer());
          return claimStatusView(status, (a) => eobButton(patient, a, eobOut));
        }));
        return h('tr', { dataset: { claim: c.id } }, h('td', {}, `${dayText(c.start_day)} – ${dayText(c.end_day)}`), h('td', {}, c.provider), h('td', {}, c.insurer),
          h('td', {}, stateBadge(c.status)), h('td', {}, btn));
      }));
  });
}
