// The operator's explorer: node status; find a transaction by hash, a block by height, a member by key
// (also a patient pseudonym, a proposal id or an organisation id); blocks; a transaction with its
// receipt and its inclusion proof checked in this page; organisations and members; validators;
// governance proposals and their votes.

import * as api from '../api.js';
import { act, badge, clear, code, errorView, fmtTime, h, notice, receiptView, short, table } from '../dom.js';
import { t } from '../i18n.js';
import { chainInfo, send } from '../ledger.js';
import { checkProof } from '../proof.js';
import { session } from '../session.js';

let detail = null; // the detail region, shared by search and links
let lastQuery = '';

function link(text, fn, label) {
  // the accessible name starts with the visible text (WCAG 2.5.3), then says what the button does
  return h('button', { type: 'button', class: 'link', onclick: fn, 'aria-label': label ? `${text} (${label})` : null }, text);
}

function kv(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function json(value) {
  return h('pre', { class: 'json', tabindex: '0' }, JSON.stringify(value, null, 2));
}

export async function showBlock(height) {
  const b = await api.block(height);
  const hd = b.header;
  return h('section', { 'aria-labelledby': 'd-h', id: 'block-detail' }, h('h2', { id: 'd-h', tabindex: '-1' }, t('ex.block', { height: b.height })),
    kv([[t('ex.hash'), code(b.hash)], [t('col.when'), fmtTime(hd.time_ms)], [t('ex.prev'), code(hd.prev_hash)],
      [t('ex.apphash'), code(hd.app_hash)], [t('ex.proposer'), code(hd.proposer)], [t('ex.txsroot'), code(hd.txs_root)],
      [t('ex.receiptsroot'), code(hd.receipts_root)], [t('ex.txcount'), String(hd.tx_count)]]),
    table(t('ex.txs.caption'), [t('col.index'), t('ex.txhash'), t('col.code')], b.receipts.map((r) => h('tr', {},
      h('td', {}, String(r.index)), h('td', {}, link(r.tx, () => open(() => showTx(r.tx)), t('ex.open.tx', { hash: short(r.tx) }))),
      h('td', {}, r.code === 0 ? badge('ok', r.name) : badge('bad', `${r.name} (${r.code})`))))));
}

export async function showTx(hash) {
  const doc = await api.tx(hash);
  if (doc.status !== 'committed') return notice('info', t('ex.pending', { hash }));
  const [{ validators }, status] = await Promise.all([api.validators(), chainInfo()]);
  const proof = await checkProof(doc.proof, status.chain_id, validators.map((v) => v.pub_key), status.engine);
  const body = doc.tx.body;
  const r = doc.receipt;
  return h('section', { 'aria-labelledby': 'd-h', id: 'tx-detail' }, h('h2', { id: 'd-h', tabindex: '-1' }, t('ex.tx')),
    kv([[t('ex.txhash'), code(doc.tx_hash)], [t('col.type'), code(body.type)], [t('ex.signer'), link(body.signer, () => open(() => showKey(body.signer)))],
      [t('ex.nonce'), String(body.nonce)], [t('ex.inblock'), link(String(doc.height), () => open(() => showBlock(doc.height)))],
      [t('col.index'), String(doc.index)],
      [t('ex.receipt'), r.code === 0 ? badge('ok', r.name) : badge('bad', `${r.name} (${r.code})`)], r.message ? [t('ex.message'), r.message] : null]),
    h('h3', {}, t('ex.proof')),
    h('p', { id: 'proof-verdict' }, proof.ok ? badge('ok', t('ex.proof.ok')) : badge('bad', t('ex.proof.bad')), ' ', t('ex.proof.where')),
    h('ul', { class: 'checks' }, proof.checks.map((c) => h('li', { class: c.ok ? 'ok' : 'bad' }, c.ok ? '✓ ' : '✗ ', t(`proof.${c.check}`)))),
    h('h3', {}, t('ex.payload')), json(body.payload), h('h3', {}, t('ex.result')), json(r.result), h('h3', {}, t('ex.events')), json(r.events));
}

export async function showKey(pub) {
  const k = await api.keyInfo(pub);
  return h('section', { 'aria-labelledby': 'd-h', id: 'key-detail' }, h('h2', { id: 'd-h', tabindex: '-1' }, t('ex.member')),
    kv([[t('col.key'), code(k.key)], [t('keys.kind'), k.kind], [t('keys.org'), k.org || '—'], [t('keys.roles'), (k.roles || []).join(', ') || '—'],
      k.handle ? [t('ex.handle'), k.handle] : null, k.pseudonym ? [t('keys.pseudonym'), code(k.pseudonym)] : null,
      [t('col.status'), k.active ? badge('ok', t('keys.active')) : badge('bad', t('keys.inactive'))], [t('ex.since'), String(k.since ?? '—')],
      [t('ex.validator'), k.validator ? t('ex.power', { power: k.validator.power }) : '—']]));
}

async function showPatient(pseudonym) {
  const p = await api.patient(pseudonym);
  return h('section', { 'aria-labelledby': 'd-h' }, h('h2', { id: 'd-h', tabindex: '-1' }, t('ex.patient')),
    kv([[t('keys.pseudonym'), code(p.pseudonym)], [t('col.key'), code(p.key)], [t('col.status'), p.status], [t('ex.since'), String(p.since)]]));
}

async function showMembers(org) {
  const m = await api.members(org);
  return h('section', { 'aria-labelledby': 'd-h' }, h('h2', { id: 'd-h', tabindex: '-1' }, t('ex.members.of', { org })),
    table(t('ex.members.caption', { org }), [t('col.key'), t('keys.roles'), t('col.status'), t('ex.handle')], m.members.map((x) => h('tr', {},
      h('td', {}, link(short(x.key, 16), () => open(() => showKey(x.key)), t('ex.open.key', { key: short(x.key) }))),
      h('td', {}, x.roles.join(', ')), h('td', {}, x.status), h('td', {}, x.handle || '—')))));
}

async function showProposal(id) {
  const { proposals } = await api.proposals();
  const p = proposals.find((x) => x.id === id);
  if (!p) throw Object.assign(new Error(t('ex.notfound')), { name: 'NOT_FOUND', code: 401 });
  return h('section', { 'aria-labelledby': 'd-h' }, h('h2', { id: 'd-h', tabindex: '-1' }, p.title), json(p));
}

function open(fn) {
  if (!detail) return;
  act(detail, null, fn).then(() => detail.querySelector('h2')?.focus());
}

/** What a search text names: a block height, a tx hash or key (64 hex: tx first), a pseudonym, a proposal, an organisation. */
export async function search(q) {
  const s = q.trim();
  if (/^[0-9]{1,16}$/.test(s)) return showBlock(Number(s));
  if (/^[0-9a-f]{64}$/.test(s)) {
    try {
      return await showTx(s);
    } catch (exc) {
      if (exc.code !== 401) throw exc;
      return showKey(s);
    }
  }
  if (/^pt-[0-9a-f]{32}$/.test(s)) return showPatient(s);
  if (/^gp-[0-9a-f]{24}$/.test(s)) return showProposal(s);
  if (/^[a-z0-9][a-z0-9.\\-]{1,62}$/.test(s)) return showMembers(s);
  throw Object.assign(new Error(t('ex.search.unknown')), { name: 'BAD_REQUEST', code: 905 });
}

function blocksSection() {
  const out = h('div', { id: 'blocks-out' });
  const more = h('button', { type: 'button', class: 'secondary', id: 'older' }, t('ex.older'));
  let before = null;
  const rows = h('tbody', {});
  const page = async () => {
    const doc = await api.blocks(before, 20);
    for (const b of doc.blocks) {
      rows.append(h('tr', {}, h('td', {}, link(String(b.height), () => open(() => showBlock(b.height)), t('ex.open.block', { height: b.height }))),
        h('td', {}, fmtTime(b.time_ms)), h('td', {}, String(b.tx_count)), h('td', {}, code(short(b.hash, 16)))));
    }
    before = doc.next_before;
    more.hidden = before === null;
  };
  more.addEventListener('click', () => page().catch((exc) => out.append(errorView(exc))));
  page().catch((exc) => out.append(errorView(exc)));
  return h('section', { 'aria-labelledby': 'blocks-h' }, h('h2', { id: 'blocks-h' }, t('ex.blocks')),
    h('div', { class: 'table-wrap' }, h('table', {}, h('caption', {}, t('ex.blocks.caption')),
      h('thead', {}, h('tr', {}, [t('col.height'), t('col.when'), t('ex.txcount'), t('ex.hash')].map((x) => h('th', { scope: 'col' }, x)))), rows)),
    more, out);
}

async function orgsSection() {
  const [{ organisations }, { validators }] = await Promise.all([api.organisations(), api.validators()]);
  return [
    h('section', { 'aria-labelledby': 'orgs-h' }, h('h2', { id: 'orgs-h' }, t('ex.orgs')),
      table(t('ex.orgs.caption'), [t('col.id'), t('ex.name'), t('keys.roles'), t('col.status'), t('col.actions')], organisations.map((o) => h('tr', {},
        h('td', {}, o.id), h('td', {}, o.name), h('td', {}, o.roles.join(', ')), h('td', {}, o.status),
        h('td', {}, link(t('ex.members'), () => open(() => showMembers(o.id)), t('ex.members.of', { org: o.id }))))))),
    h('section', { 'aria-labelledby': 'vals-h' }, h('h2', { id: 'vals-h' }, t('ex.validators')),
      table(t('ex.validators.caption'), [t('col.key'), t('col.org'), t('ex.powercol')], validators.map((v) => h('tr', {},
        h('td', {}, link(short(v.pub_key, 16), () => open(() => showKey(v.pub_key)), t('ex.open.key', { key: short(v.pub_key) }))),
        h('td', {}, v.org), h('td', {}, String(v.power)))))),
  ];
}

async function proposalsSection() {
  const out = h('div', { 'aria-live': 'polite', id: 'vote-out' });
  const { proposals } = await api.proposals();
  const admin = session.info?.kind === 'admin';
  const rows = proposals.map((p) => {
    const vote = (approve) => {
      const b = h('button', { type: 'button', class: 'small' + (approve ? '' : ' danger') }, approve ? t('ex.vote.yes') : t('ex.vote.no'));
      b.addEventListener('click', () => act(out, b, async () => {
        const result = await send('governance.vote', { approve, proposal: p.id });
        const fresh = await proposalsSection(); // the votes as they are now
        section.replaceWith(fresh);
        fresh.querySelector('#vote-out').append(receiptView(result));
        return undefined;
      }));
      return b;
    };
    return h('tr', {}, h('td', {}, code(p.id)), h('td', {}, p.title), h('td', {}, p.action.kind), h('td', {}, p.proposer_org),
      h('td', {}, t(`gp.${p.status}`, {}, p.status)), h('td', {}, p.yes.join(', ') || '—'), h('td', {}, p.no.join(', ') || '—'),
      h('td', {}, admin && p.status === 'open' ? [vote(true), ' ', vote(false)] : '—'));
  });
  const section = h('section', { 'aria-labelledby': 'gov-h' }, h('h2', { id: 'gov-h' }, t('ex.proposals')),
    table(t('ex.proposals.caption'), [t('col.id'), t('ex.titlecol'), t('ex.action'), t('ex.proposer'), t('col.status'), t('ex.yes'), t('ex.no'), t('col.actions')], rows), out);
  return section;
}

export async function render(main) {
  clear(main, h('h1', {}, t('ex.title')));
  const status = await api.status();
  main.append(h('section', { 'aria-labelledby': 'st-h' }, h('h2', { id: 'st-h' }, t('ex.status')),
    kv([[t('ex.chain'), status.chain_id], [t('ex.engine'), status.engine], [t('col.height'), String(status.height)],
      [t('ex.apphash'), code(status.app_hash)], [t('ex.hash'), code(status.block_hash)], [t('ex.latest'), fmtTime(status.latest_block_time_ms)],
      [t('ex.nodekey'), code(status.node_key)], [t('ex.mempool'), String(status.mempool)], [t('ex.genesis'), code(status.genesis_hash)],
      [t('ex.suite'), status.crypto_suite]])));
  const input = h('input', { type: 'search', id: 'ex-search', class: 'wide', value: lastQuery, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'ex-search-hint' });
  const btn = h('button', { type: 'submit', id: 'ex-go' }, t('ex.find'));
  detail = h('div', { id: 'ex-detail', 'aria-live': 'polite' });
  main.append(h('form', { role: 'search', class: 'inline', onsubmit: (e) => {
    e.preventDefault();
    lastQuery = input.value;
    act(detail, btn, () => search(input.value)).then(() => detail.querySelector('h2')?.focus());
  } }, h('div', { class: 'field' }, h('label', { for: 'ex-search' }, t('ex.search')), input,
    h('p', { class: 'hint', id: 'ex-search-hint' }, t('ex.search.hint'))), btn), detail, blocksSection());
  main.append(...(await orgsSection()), await proposalsSection());
}
