// The patient's view: my records (opened through the custodian's gateway, shown as readable FHIR,
// checked against the ledger), my consents (grant and revoke by purpose, resource type and period),
// my delegates, my access log (granted, denied and break-glass reads, flagged) and erasure.

import * as api from '../api.js';
import { act, badge, clear, code, field, fmtDate, fmtTime, h, notice, receiptView, short, table } from '../dom.js';
import { t } from '../i18n.js';
import { gatewayBase, request, send, signOnly, signer } from '../ledger.js';
import { readRecords, recordCard } from '../records.js';
import { session } from '../session.js';

export const PURPOSES = ['TREAT', 'ETREAT', 'HPAYMT', 'HOPERAT', 'HRESCH', 'PATRQT', 'PUBHLTH', 'CLINTRCH'];
let patientId = null;
let flash = null; // {out: id of an output region, view}: shown there once the view has reloaded

/** After a committed change: reload the patient view and show `view` in the region `outId`. */
function after(reload, outId, view) {
  flash = { out: outId, view };
  setTimeout(reload, 0);
  return view;
}

const dateMs = (value) => (value ? Date.parse(value + 'T00:00:00Z') : null);

function outcomeBadges(e) {
  return [e.outcome === 'granted' ? badge('ok', t('log.granted')) : badge('bad', t('log.denied')),
    e.emergency ? [' ', badge('warn', t('log.breakglass'))] : null];
}

function recordsSection(view, reload) {
  const out = h('div', { id: 'record-out', 'aria-live': 'polite' });
  const rows = view.records.map((r) => {
    const open = h('button', { type: 'button', class: 'small', 'aria-label': t('pt.open.label', { type: r.type, date: r.date }) }, t('pt.open'));
    open.addEventListener('click', () => act(out, open, async () => {
      const fetched = await readRecords({ custodian: r.custodian, patient: view.patient, records: [r.record], purpose: 'PATRQT' });
      return h('div', {}, fetched.map(recordCard));
    }));
    const erase = h('button', { type: 'button', class: 'small danger', 'aria-label': t('pt.erase.label', { type: r.type, date: r.date }) }, t('pt.erase'));
    erase.addEventListener('click', () => {
      if (!confirm(t('pt.erase.confirm'))) return;
      act(out, erase, async () => {
        const { wire } = await signOnly('records.erase', { reason: 'patient_request', record: r.record });
        const result = await api.gatewayErase(await gatewayBase(r.custodian), wire);
        return after(reload, 'record-out', notice('ok', t('pt.erased', { record: result.record || r.record })));
      });
    });
    return h('tr', { class: r.status === 'erased' ? 'erased' : '' },
      h('td', {}, r.custodian), h('td', {}, r.type), h('td', {}, r.date), h('td', {}, String(r.version)),
      h('td', {}, r.status === 'erased' ? badge('muted', t('pt.status.erased')) : t('pt.status.active')),
      h('td', {}, r.status === 'erased' ? '—' : [open, ' ', erase]));
  });
  return h('section', { 'aria-labelledby': 'pt-rec-h' }, h('h2', { id: 'pt-rec-h' }, t('pt.records')),
    table(t('pt.records.caption', { n: view.records.length }), [t('col.custodian'), t('col.type'), t('col.date'), t('col.version'), t('col.status'), t('col.actions')], rows),
    out);
}

function consentsSection(view, reload) {
  const out = h('div', { 'aria-live': 'polite', id: 'consent-out' });
  const rows = view.consents.map((c) => {
    const revoke = h('button', { type: 'button', class: 'small danger', 'aria-label': t('pt.revoke.label', { id: c.id }) }, t('pt.revoke'));
    revoke.addEventListener('click', () => act(out, revoke, async () => {
      const result = await send('consent.revoke', { consent: c.id });
      return after(reload, 'consent-out', receiptView(result));
    }));
    const period = c.period ? `${fmtDate(c.period.start_ms)} – ${fmtDate(c.period.end_ms)}` : t('pt.always');
    return h('tr', {}, h('td', {}, code(c.id)), h('td', {}, `${t('grantee.' + c.grantee.kind)}: ${short(c.grantee.id, 20)}`),
      h('td', {}, c.provision === 'deny' ? badge('bad', t('pt.deny')) : t('pt.permit')),
      h('td', {}, c.purposes.map((p) => t(`purpose.${p}`)).join(', ')),
      h('td', {}, c.resource_types.length ? c.resource_types.join(', ') : t('pt.alltypes')), h('td', {}, period),
      h('td', {}, c.status === 'active' ? t('pt.status.active') : badge('muted', t('pt.status.revoked'))),
      h('td', {}, c.status === 'active' ? revoke : '—'));
  });
  const kind = h('select', { id: 'grantee-kind' }, ['org', 'member', 'study'].map((k) => h('option', { value: k }, t('grantee.' + k))));
  const who = h('input', { type: 'text', id: 'grantee-id', required: true, autocomplete: 'off', pattern: '[A-Za-z0-9][A-Za-z0-9._\\-]{1,63}' });
  const provision = h('select', { id: 'provision' }, h('option', { value: 'permit' }, t('pt.permit')), h('option', { value: 'deny' }, t('pt.deny')));
  const purposes = PURPOSES.map((p) => h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'purpose', value: p, checked: p === 'TREAT' }), ' ', t(`purpose.${p}`)));
  const types = h('input', { type: 'text', id: 'resource-types', autocomplete: 'off', placeholder: 'Observation, Condition' });
  const from = h('input', { type: 'date', id: 'period-from' });
  const to = h('input', { type: 'date', id: 'period-to' });
  const btn = h('button', { type: 'submit', id: 'grant' }, t('pt.grant'));
  const form = h('form', {
    class: 'grid-form',
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        const chosen = [...form.querySelectorAll('input[name=purpose]:checked')].map((x) => x.value);
        if (!chosen.length) throw new Error(t('pt.purpose.needed'));
        const payload = {
          grantee: { id: who.value.trim(), kind: kind.value }, patient: view.patient, provision: provision.value, purposes: chosen,
          records: [], resource_types: types.value.split(',').map((x) => x.trim()).filter(Boolean),
        };
        if (from.value || to.value) payload.period = { end_ms: dateMs(to.value), start_ms: dateMs(from.value) };
        const result = await send('consent.grant', payload);
        return result.receipt.code === 0 ? after(reload, 'consent-out', receiptView(result)) : receiptView(result);
      });
    },
  }, field(t('pt.grantee.kind'), kind), field(t('pt.grantee.id'), who, t('pt.grantee.hint')), field(t('pt.provision'), provision),
  h('fieldset', {}, h('legend', {}, t('pt.purposes')), purposes),
  field(t('pt.types'), types, t('pt.types.hint')), field(t('pt.from'), from), field(t('pt.to'), to, t('pt.to.hint')), h('div', {}, btn));
  return h('section', { 'aria-labelledby': 'pt-cons-h' }, h('h2', { id: 'pt-cons-h' }, t('pt.consents')),
    table(t('pt.consents.caption'), [t('col.id'), t('col.grantee'), t('col.provision'), t('col.purposes'), t('col.types'), t('col.period'), t('col.status'), t('col.actions')], rows),
    h('h3', {}, t('pt.grant.title')), form, out);
}

function delegatesSection(view, reload) {
  const out = h('div', { 'aria-live': 'polite', id: 'delegate-out' });
  const rows = view.delegates.map((d) => {
    const remove = h('button', { type: 'button', class: 'small danger' }, t('pt.remove'));
    remove.addEventListener('click', () => act(out, remove, async () => {
      const result = await send('consent.remove_delegate', { delegate: d.key });
      return after(reload, 'delegate-out', receiptView(result));
    }));
    return h('tr', {}, h('td', {}, code(short(d.key, 16))), h('td', {}, d.status), h('td', {}, fmtDate(d.until_ms)),
      h('td', {}, d.status === 'active' && view.as === 'patient' ? remove : '—'));
  });
  const key = h('input', { type: 'text', id: 'delegate-key', required: true, pattern: '[0-9a-f]{64}', autocomplete: 'off' });
  const until = h('input', { type: 'date', id: 'delegate-until' });
  const btn = h('button', { type: 'submit', id: 'appoint' }, t('pt.appoint'));
  const form = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        const result = await send('consent.appoint_delegate', { delegate: key.value.trim(), until_ms: dateMs(until.value) });
        return result.receipt.code === 0 ? after(reload, 'delegate-out', receiptView(result)) : receiptView(result);
      });
    },
  }, field(t('pt.delegate.key'), key, t('pt.delegate.hint')), field(t('pt.delegate.until'), until), btn);
  return h('section', { 'aria-labelledby': 'pt-del-h' }, h('h2', { id: 'pt-del-h' }, t('pt.delegates')),
    table(t('pt.delegates.caption'), [t('col.key'), t('col.status'), t('col.until'), t('col.actions')], rows),
    view.as === 'patient' ? form : null, out);
}

function logSection(view) {
  const rows = [...view.access_log].reverse().map((e) => h('tr', { class: e.outcome === 'denied' ? 'denied' : e.emergency ? 'emergency' : '' },
    h('td', {}, fmtTime(e.request_ms)), h('td', {}, e.requester_org || '—', ' ', code(short(e.requester, 8))),
    h('td', {}, e.record ? code(short(e.record, 12)) : '—'), h('td', {}, t(`purpose.${e.purpose}`)),
    h('td', {}, outcomeBadges(e)), h('td', {}, t(`mode.${e.mode}`)), h('td', {}, e.code ? code(String(e.code)) : '—')));
  const s = view.summary;
  return h('section', { 'aria-labelledby': 'pt-log-h' }, h('h2', { id: 'pt-log-h' }, t('pt.log')),
    h('p', { id: 'log-summary' }, t('pt.log.summary', { n: s.accesses, denied: s.denied, emergency: s.emergency })),
    table(t('pt.log.caption'), [t('col.when'), t('col.who'), t('col.record'), t('col.purpose'), t('col.outcome'), t('col.mode'), t('col.code')], rows, { class: 'log' }),
    view.break_glass.length ? h('div', {}, h('h3', {}, t('pt.sessions')), table(t('pt.sessions.caption'), [t('col.org'), t('col.reason'), t('col.opened'), t('col.expires')],
      view.break_glass.map((b) => h('tr', {}, h('td', {}, b.org), h('td', {}, t(`bg.${b.reason}`)), h('td', {}, fmtTime(b.opened_ms)), h('td', {}, fmtTime(b.expires_ms)))))) : null);
}

export async function render(main) {
  clear(main, h('h1', {}, t('pt.title')), h('p', { class: 'lead' }, t('pt.lead')));
  if (!session.key) {
    main.append(notice('info', t('need.key'), ' ', h('a', { href: '#/keys' }, t('key.load'))));
    return;
  }
  const own = session.info?.pseudonym || '';
  patientId = patientId || own;
  const who = h('input', { type: 'text', id: 'patient-id', class: 'wide', value: patientId, required: true, pattern: 'pt-[0-9a-f]{32}', autocomplete: 'off' });
  const body = h('div', { id: 'patient-body', 'aria-live': 'polite' });
  const btn = h('button', { type: 'submit', id: 'load-view' }, t('pt.load'));
  const load = () => act(body, btn, async () => {
    patientId = who.value.trim();
    const view = await api.recordsQuery(request('view', { format: 'json', patient: patientId }), await signer());
    const shown = h('div', {}, h('p', { class: 'small' }, t('pt.as', { as: t(`as.${view.as}`), pseudonym: view.patient })),
      recordsSection(view, load), consentsSection(view, load), delegatesSection(view, load), logSection(view));
    if (flash) {
      shown.querySelector(`#${flash.out}`)?.append(flash.view);
      flash = null;
    }
    return shown;
  });
  main.append(h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); load(); } },
    field(t('pt.patient'), who, own ? null : t('pt.patient.hint')), btn), body);
  if (!session.info) main.append(notice('info', t('pt.register.first'), ' ', h('a', { href: '#/keys' }, t('nav.keys'))));
  if (patientId) await load();
}
