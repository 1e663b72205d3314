// Reading records through a custodian's gateway and checking them against the ledger, in the page:
// the gateway returns each record's canonical bytes and salt; the page recomputes
// SHA-256(salt ‖ canonical) and compares it with the commitment the ledger anchored (docs/records.md),
// as careledger.client.records.RecordsClient does.

import * as api from './api.js';
import { decodeCanonical } from './canonical.js';
import { concat, fromHex, sha256Hex, utf8 } from './bytes.js';
import { gatewayBase, request, signer } from './ledger.js';

/** Read `records` of `patient` at `custodian`; each result carries its resource and integrity checks. */
export async function readRecords({ custodian, patient, records, purpose, emergency = false }) {
  const base = await gatewayBase(custodian);
  const sign = await signer();
  const answer = await api.gatewayRead(base, request('read', { custodian, emergency, patient, purpose, records }), sign);
  const anchors = await api.recordsQuery(request('anchors', { emergency, patient, purpose, records }), sign);
  const byRecord = new Map(anchors.anchors.map((a) => [a.record, a]));
  const out = [];
  for (const r of answer.records) {
    let resource = null;
    let canonical = false;
    try {
      resource = decodeCanonical(r.canonical);
      canonical = true;
    } catch {
      resource = null;
    }
    const computed = await sha256Hex(concat(fromHex(r.salt), utf8(r.canonical)));
    const anchor = (byRecord.get(r.record)?.versions || []).find((v) => v.version === r.version);
    out.push({
      ...r, resource, canonical, computed,
      matchesSent: computed === r.commitment,
      matchesLedger: !!anchor && anchor.commitment === computed && anchor.custodian === r.custodian,
      anchor,
    });
  }
  return out;
}

import { badge, h } from './dom.js';
import { render as renderFhir } from './fhir.js';
import { t } from './i18n.js';

/** One fetched record: what it is, whether it is intact, and the resource in readable form. */
export function recordCard(r) {
  const intact = r.canonical && r.matchesSent && r.matchesLedger;
  return h('article', { class: 'record-card', 'aria-label': t('rec.card', { type: r.type, record: r.record }) },
    h('header', {},
      h('h3', {}, `${r.type} · ${r.custodian}`),
      intact ? badge('ok', t('rec.intact')) : badge('bad', t('rec.tampered')),
      r.emergency ? badge('warn', t('log.breakglass')) : null),
    h('p', { class: 'integrity small' }, intact
      ? t('rec.intact.detail', { commitment: r.computed, version: r.version, height: r.anchor?.height ?? '—' })
      : t('rec.tampered.detail', { commitment: r.computed })),
    r.resource ? renderFhir(r.resource) : h('p', {}, t('rec.unreadable')));
}
