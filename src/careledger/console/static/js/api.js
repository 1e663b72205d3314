// Every HTTP call the console makes, in one module. Each function returns the decoded JSON answer or
// throws ApiError with the node's stable code and name (docs/http-api.md). Signing happens in
// signing.js; a signed call takes a `signer(method, target, bodyText)` that returns its headers.

export class ApiError extends Error {
  constructor(status, code, name, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.name = name;
    this.body = body;
  }
}

async function call(method, path, { base = '', body, headers = {}, raw = false, signer = null } = {}) {
  const init = { method, headers: { ...headers }, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  if (signer) {
    // the target is what the server receives: the path and query of the URL fetch sends
    const url = new URL(base + path, location.href);
    Object.assign(init.headers, await signer(method, url.pathname + url.search, init.body ?? ''));
  }
  let response;
  try {
    response = await fetch(base + path, init);
  } catch (exc) {
    throw new ApiError(0, 904, 'NODE_UNAVAILABLE', String(exc?.message || exc));
  }
  const text = await response.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  if (!response.ok) {
    const err = doc?.error || {};
    throw new ApiError(response.status, err.code ?? 999, err.name ?? 'INTERNAL_ERROR', err.message ?? response.statusText, doc);
  }
  return raw ? text : doc;
}

const q = (params) => {
  const s = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ''));
  const text = s.toString();
  return text ? '?' + text : '';
};

// -- node, blocks, transactions -----------------------------------------------------------------------------
export const status = () => call('GET', '/v1/status');
export const block = (height) => call('GET', `/v1/blocks/${encodeURIComponent(height)}`);
export const latestBlock = () => call('GET', '/v1/blocks/latest');
export const blocks = (before, limit = 20) => call('GET', '/v1/console/blocks' + q({ before, limit }));
export const tx = (hash) => call('GET', `/v1/txs/${encodeURIComponent(hash)}`);
export const nonce = (pub) => call('GET', `/v1/accounts/${encodeURIComponent(pub)}/nonce`);
export const submitTx = (wire, timeout = 30) => call('POST', '/v1/txs' + q({ wait: 'commit', timeout }), { body: wire });

// -- identity and governance --------------------------------------------------------------------------------
export const organisations = () => call('GET', '/v1/identity/organisations');
export const members = (org) => call('GET', `/v1/identity/organisations/${encodeURIComponent(org)}/members`);
export const keyInfo = (pub) => call('GET', `/v1/identity/keys/${encodeURIComponent(pub)}`);
export const patient = (pseudonym) => call('GET', `/v1/identity/patients/${encodeURIComponent(pseudonym)}`);
export const proposals = (status) => call('GET', '/v1/governance/proposals' + q({ status }));
export const validators = () => call('GET', '/v1/governance/validators');

// -- records: patient-scoped queries (any node) and custodian gateways ---------------------------------------
export const recordsQuery = (request, signer) => call('POST', '/v1/records/query', { body: request, signer });
export const gatewayRead = (base, request, signer) => call('POST', '/v1/gateway/read', { base, body: request, signer });
export const gatewayErase = (base, txWire) => call('POST', '/v1/gateway/erase', {
  base, body: { tx: Array.from(new TextEncoder().encode(txWire), (b) => b.toString(16).padStart(2, '0')).join('') },
});
export const gatewayCustodians = (base = '') => call('GET', '/v1/gateway', { base });

// -- supply -------------------------------------------------------------------------------------------------
export const verifyPack = (params) => call('GET', '/v1/supply/verify' + q(params));
export const item = (epc) => call('GET', '/v1/supply/items' + q({ epc }));
export const product = (gtin) => call('GET', `/v1/supply/products/${encodeURIComponent(gtin)}`);
export const recalls = () => call('GET', '/v1/console/supply/recalls');
export const lotDistribution = (gtin, lot) => call('GET',
  `/v1/console/supply/lots/${encodeURIComponent(gtin)}/${encodeURIComponent(lot)}/distribution`);
/** Alerts are a signed GET. */
export const alerts = (params, signer) => call('GET', '/v1/supply/alerts' + q(params), { signer });

// -- claims: signed claim queries (their bodies are the claims kinds) and rule data about no one ---------------
export const claimStatus = (claim, signer) => call('POST', '/v1/claims/status', { body: { claim, kind: 'claims.status' }, signer });
export const claimList = (patient, signer) => call('POST', '/v1/claims/list', { body: { kind: 'claims.list', patient }, signer });
export const claimFlags = (insurer, signer, sinceHeight = 0) => call('POST', '/v1/claims/flags', {
  body: { insurer, kind: 'claims.flags', since_height: sinceHeight }, signer });
export const claimPlan = (insurer, plan) => call('GET', `/v1/claims/plans/${encodeURIComponent(insurer)}/${encodeURIComponent(plan)}`);
export const editTable = (name) => call('GET', `/v1/claims/tables/${encodeURIComponent(name)}`);

// -- research: the study registry ----------------------------------------------------------------------------
export const studies = (kind) => call('GET', '/v1/research/studies' + q({ kind }));
export const study = (id) => call('GET', `/v1/research/studies/${encodeURIComponent(id)}`);
/** One study pseudonym's research log: a signed request by that study key. */
export const researchLog = (signer) => call('POST', '/v1/research/log', { body: { kind: 'research-log' }, signer });

// -- trials: public registry records --------------------------------------------------------------------------
const trialPath = (trial, tail = '') => `/v1/trials/${encodeURIComponent(trial)}${tail}`;
export const trials = () => call('GET', '/v1/trials');
export const trial = (id) => call('GET', trialPath(id));
export const trialSites = (id) => call('GET', trialPath(id, '/sites'));
export const trialProtocols = (id) => call('GET', trialPath(id, '/protocols'));
export const trialReconsent = (id) => call('GET', trialPath(id, '/reconsent'));
export const trialSafety = (id) => call('GET', trialPath(id, '/safety'));
export const trialSubject = (id, subject) => call('GET', trialPath(id, `/subjects/${encodeURIComponent(subject)}`));
