// The pharmacist's view: scan a pack's GS1 DataMatrix with the camera (or an image, or paste the
// element string or Digital Link), see VERIFIED or NOT VERIFIED with the reasons (EU FMD / NMVS codes,
// DSCSA), record the check on the ledger, dispense, and take a return back within the undo window.

import * as api from '../api.js';
import { act, badge, clear, code, field, fmtTime, h, notice, receiptView } from '../dom.js';
import { t } from '../i18n.js';
import { send } from '../ledger.js';
import { readImage, scanCamera } from '../scanner.js';
import { session } from '../session.js';

const UNDO_WINDOW_MS = 10 * 24 * 3600 * 1000; // EU 2016/161 Art 13: ten days
const state = { input: '', verdict: null };
let camera = null;

export function identifierQuery(text) {
  const s = text.trim();
  return /^https?:\/\//i.test(s) ? { dl: s } : { scan: s };
}

function verdictView(v) {
  const ok = v.verified;
  const pack = v.pack || {};
  return h('div', { class: `verdict ${ok ? 'verdict-ok' : 'verdict-bad'}`, id: 'verdict', role: 'status' },
    h('p', { class: 'verdict-word' }, ok ? t('ph.verified') : t('ph.notverified')),
    ok ? null : h('ul', { class: 'reasons' }, v.reasons.map((r) => h('li', {}, h('strong', {}, t(`reason.${r}`)), ' ', code(r)))),
    h('dl', { class: 'facts' },
      h('dt', {}, t('ph.product')), h('dd', {}, v.product?.name || '—'),
      h('dt', {}, 'GTIN'), h('dd', {}, code(v.gtin)), h('dt', {}, t('ph.serial')), h('dd', {}, code(v.serial)),
      h('dt', {}, t('ph.lot')), h('dd', {}, pack.lot || v.lot || '—'), h('dt', {}, t('ph.expiry')), h('dd', {}, pack.expiry || v.expiry || '—'),
      h('dt', {}, t('ph.state')), h('dd', {}, pack.state ? t(`packstate.${pack.state}`, {}, pack.state) : '—'),
      h('dt', {}, t('ph.holder')), h('dd', {}, pack.holder || '—'),
      v.nmvs_codes?.length ? [h('dt', {}, 'EU FMD (NMVS)'), h('dd', {}, v.nmvs_codes.join(', '))] : null,
      v.dscsa && !v.dscsa.verified ? [h('dt', {}, 'DSCSA'), h('dd', {}, v.dscsa.verificationFailureReason || '—')] : null),
    v.custody?.length ? h('ol', { class: 'custody-mini', 'aria-label': t('ph.custody') },
      v.custody.map((c) => h('li', {}, `${c.org} · ${t(`how.${c.how}`, {}, c.how)} · ${fmtTime(c.since_ms)}`))) : null);
}

async function undoWindow(ref) {
  const it = await api.item(ref);
  const last = [...it.history].reverse().find((e) => e.op === 'decommission');
  if (!last || it.state !== 'supplied') return null;
  return { at: last.at_ms, until: last.at_ms + UNDO_WINDOW_MS };
}

export async function render(main) {
  clear(main, h('h1', {}, t('ph.title')), h('p', { class: 'lead' }, t('ph.lead')));
  const input = h('input', { type: 'text', id: 'scan-input', value: state.input, autocomplete: 'off', spellcheck: 'false', required: true });
  const out = h('div', { id: 'ph-out', 'aria-live': 'polite' });
  const actions = h('div', { id: 'ph-actions', 'aria-live': 'polite' });
  const verifyBtn = h('button', { type: 'submit', id: 'verify' }, t('ph.verify'));
  const video = h('video', { id: 'camera', muted: true, playsinline: true, 'aria-label': t('ph.camera.preview') });
  video.hidden = true;
  const camBtn = h('button', { type: 'button', id: 'camera-scan', class: 'secondary' }, t('ph.camera'));
  const imageInput = h('input', { type: 'file', id: 'scan-image', accept: 'image/*' });
  const camState = h('p', { class: 'small', id: 'camera-state', 'aria-live': 'polite' });

  const actionButtons = (v) => {
    if (!session.key) return null;
    const ref = `${v.gtin}/${v.serial}`;
    const record = h('button', { type: 'button', id: 'record-check', class: 'secondary' }, t('ph.record'));
    record.addEventListener('click', () => act(actions, record, async () => {
      const payload = { scan: input.value.trim() };
      if (/^https?:/i.test(payload.scan)) {
        payload.dl = payload.scan;
        delete payload.scan;
      }
      const result = await send('supply.verify', payload);
      return h('div', {}, receiptView(result), result.receipt.result ? verdictView({ ...v, ...result.receipt.result, custody: [] }) : null);
    }));
    const dispense = h('button', { type: 'button', id: 'dispense' }, t('ph.dispense'));
    dispense.addEventListener('click', () => act(actions, dispense, async () => {
      const result = await send('supply.decommission', { items: [ref], state: 'supplied' });
      const w = result.receipt.code === 0 ? await undoWindow(ref) : null;
      return h('div', {}, receiptView(result), w ? h('p', { id: 'undo-until' }, t('ph.undo.until', { until: fmtTime(w.until) })) : null);
    }));
    const undo = h('button', { type: 'button', id: 'return-pack', class: 'secondary' }, t('ph.return'));
    undo.addEventListener('click', () => act(actions, undo, async () => {
      const result = await send('supply.undo', { items: [ref], state: 'supplied' });
      return receiptView(result);
    }));
    return h('div', { class: 'button-row' }, record, ' ', v.verified ? dispense : null, ' ', v.pack?.state === 'supplied' ? undo : null);
  };

  const verify = () => act(out, verifyBtn, async () => {
    state.input = input.value.trim();
    clear(actions);
    const v = await api.verifyPack(identifierQuery(state.input));
    state.verdict = v;
    const window = v.pack?.state === 'supplied' && session.key ? await undoWindow(`${v.gtin}/${v.serial}`).catch(() => null) : null;
    clear(actions, actionButtons(v), window ? h('p', { id: 'undo-until' }, t('ph.undo.until', { until: fmtTime(window.until) })) : null);
    return verdictView(v);
  });

  camBtn.addEventListener('click', async () => {
    if (camera) {
      camera.stop();
      camera = null;
      video.hidden = true;
      camBtn.textContent = t('ph.camera');
      camState.textContent = '';
      return;
    }
    video.hidden = false;
    camBtn.textContent = t('ph.camera.stop');
    camState.textContent = t('ph.camera.starting');
    camera = scanCamera(video, (s) => { camState.textContent = t(`ph.camera.${s}`); });
    try {
      const text = await camera.result;
      if (text) {
        input.value = text;
        camState.textContent = t('ph.camera.read');
        verify();
      }
    } catch (exc) {
      camState.textContent = t('ph.camera.error', { message: exc?.message || String(exc) });
    } finally {
      camera = null;
      video.hidden = true;
      camBtn.textContent = t('ph.camera');
    }
  });
  imageInput.addEventListener('change', async () => {
    const f = imageInput.files[0];
    if (!f) return;
    camState.textContent = t('ph.camera.starting');
    const text = await readImage(f).catch(() => null);
    camState.textContent = text ? t('ph.camera.read') : t('ph.image.none');
    if (text) {
      input.value = text;
      verify();
    }
  });

  main.append(
    h('form', { onsubmit: (e) => { e.preventDefault(); verify(); } },
      field(t('ph.input'), input, t('ph.input.hint')), h('div', { class: 'button-row' }, verifyBtn, ' ', camBtn)),
    field(t('ph.image'), imageInput), camState, video, out, actions);
  if (!session.key) main.append(notice('info', t('ph.key.hint')));
  if (state.input) verify();
}
