// Keys: unlock a stored key, load a key file (the CLI's plain version 1 or encrypted version 2), create
// a key, download it sealed, register a new key as a patient. Private keys never leave this page.

import { act, clear, errorView, field, h, notice, receiptView, short } from '../dom.js';
import { t } from '../i18n.js';
import { importSeed, newSeed, parseKeyFile, seal, seedOfPlain, storeKey, storedKeys, forgetKey, unlock } from '../keys.js';
import { send } from '../ledger.js';
import { session, setKey } from '../session.js';

// Unlocking re-renders every view (the session changed): what an action has to say survives it here.
let flash = null;

function progressBar() {
  const bar = h('progress', { max: 1, value: 0, 'aria-label': t('keys.deriving') });
  bar.hidden = true;
  const update = (p) => {
    bar.hidden = false;
    bar.value = p;
  };
  return { bar, update };
}

function downloadLink(doc) {
  const blob = new Blob([JSON.stringify(doc, null, 2) + '\n'], { type: 'application/json' });
  return h('a', { href: URL.createObjectURL(blob), download: `${doc.name || 'key'}.json`, class: 'button', id: 'download-key' },
    t('keys.download'));
}

async function storedSection() {
  const out = h('div', { 'aria-live': 'polite' });
  const keys = await storedKeys();
  if (!keys.length) return h('section', { 'aria-labelledby': 'stored-h' }, h('h2', { id: 'stored-h' }, t('keys.stored')), h('p', {}, t('keys.stored.none')));
  const select = h('select', { id: 'stored-key' }, keys.map((k) => h('option', { value: k.public_key }, `${k.name || t('key.unnamed')} — ${short(k.public_key, 12)}`)));
  const pass = h('input', { type: 'password', id: 'stored-pass', autocomplete: 'current-password', required: true });
  const { bar, update } = progressBar();
  const unlockBtn = h('button', { type: 'submit', id: 'unlock' }, t('keys.unlock'));
  const form = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      act(out, unlockBtn, async () => {
        const doc = keys.find((k) => k.public_key === select.value);
        const key = await unlock(doc, pass.value, update);
        pass.value = '';
        flash = notice('ok', t('keys.unlocked', { name: key.name }));
        await setKey(key);
        return undefined;
      });
    },
  }, h('input', { type: 'text', autocomplete: 'username', hidden: true, value: keys[0].name || '', 'aria-hidden': 'true', tabindex: '-1' }),
  field(t('keys.which'), select), field(t('keys.passphrase'), pass), bar, unlockBtn, ' ',
  h('button', {
    type: 'button', class: 'secondary', onclick: async () => {
      if (!confirm(t('keys.forget.confirm'))) return;
      await forgetKey(select.value);
      if (session.key?.publicHex === select.value) await setKey(null);
      else location.reload();
    },
  }, t('keys.forget')));
  return h('section', { 'aria-labelledby': 'stored-h' }, h('h2', { id: 'stored-h' }, t('keys.stored')), form, out);
}

function loadSection() {
  const out = h('div', { 'aria-live': 'polite' });
  const file = h('input', { type: 'file', id: 'key-file', accept: '.json,application/json', required: true });
  const pass = h('input', { type: 'password', id: 'load-pass', autocomplete: 'new-password', required: true, minlength: 8 });
  const { bar, update } = progressBar();
  const btn = h('button', { type: 'submit', id: 'load-key' }, t('keys.load.button'));
  const form = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        const f = file.files[0];
        if (!f) throw new Error(t('keys.load.nofile'));
        const doc = parseKeyFile(await f.text());
        let key;
        let sealed;
        if (doc.version === 2) {
          key = await unlock(doc, pass.value, update); // the file's own passphrase
          sealed = doc;
        } else {
          const seed = await seedOfPlain(doc);
          sealed = await seal(seed, pass.value, doc.name || f.name.replace(/\.json$/, ''), { onProgress: update });
          key = { ...(await importSeed(seed)), name: sealed.name };
          seed.fill(0);
        }
        pass.value = '';
        file.value = '';
        await storeKey(sealed);
        flash = notice('ok', t('keys.loaded', { name: key.name }));
        await setKey(key);
        return undefined;
      });
    },
  }, field(t('keys.file'), file, t('keys.file.hint')), field(t('keys.passphrase'), pass, t('keys.load.pass.hint')), bar, btn);
  return h('section', { 'aria-labelledby': 'load-h' }, h('h2', { id: 'load-h' }, t('keys.load.title')), form, out);
}

function createSection() {
  const out = h('div', { 'aria-live': 'polite' });
  const name = h('input', { type: 'text', id: 'new-name', required: true, maxlength: 64, pattern: '[A-Za-z0-9._@\\-]{1,64}', autocomplete: 'off' });
  const pass = h('input', { type: 'password', id: 'new-pass', autocomplete: 'new-password', required: true, minlength: 8 });
  const again = h('input', { type: 'password', id: 'new-pass2', autocomplete: 'new-password', required: true, minlength: 8 });
  const { bar, update } = progressBar();
  const btn = h('button', { type: 'submit', id: 'create-key' }, t('keys.create.button'));
  const form = h('form', {
    onsubmit: (e) => {
      e.preventDefault();
      act(out, btn, async () => {
        if (pass.value !== again.value) throw new Error(t('keys.mismatch'));
        const seed = newSeed();
        const sealed = await seal(seed, pass.value, name.value, { onProgress: update });
        const key = { ...(await importSeed(seed)), name: name.value };
        seed.fill(0);
        pass.value = again.value = '';
        await storeKey(sealed);
        flash = h('div', {}, notice('ok', t('keys.created', { name: key.name })), h('p', {}, t('keys.download.hint')), downloadLink(sealed));
        await setKey(key);
        return undefined;
      });
    },
  }, field(t('keys.name'), name, t('keys.name.hint')), field(t('keys.passphrase'), pass, t('keys.pass.hint')),
  field(t('keys.passphrase.again'), again), bar, btn);
  return h('section', { 'aria-labelledby': 'create-h' }, h('h2', { id: 'create-h' }, t('keys.create.title')), form, out);
}

function registerSection() {
  if (!session.key) return null;
  const out = h('div', { 'aria-live': 'polite' });
  if (session.info) {
    const i = session.info;
    return h('section', { 'aria-labelledby': 'me-h' }, h('h2', { id: 'me-h' }, t('keys.me')),
      h('dl', { class: 'facts' },
        h('dt', {}, t('keys.public')), h('dd', {}, h('code', { class: 'hash' }, session.key.publicHex)),
        h('dt', {}, t('keys.kind')), h('dd', {}, i.kind),
        i.org ? [h('dt', {}, t('keys.org')), h('dd', {}, i.org)] : null,
        i.roles?.length ? [h('dt', {}, t('keys.roles')), h('dd', {}, i.roles.join(', '))] : null,
        i.pseudonym ? [h('dt', {}, t('keys.pseudonym')), h('dd', {}, h('code', { id: 'my-pseudonym' }, i.pseudonym))] : null,
        h('dt', {}, t('keys.status')), h('dd', {}, i.active ? t('keys.active') : t('keys.inactive'))));
  }
  const btn = h('button', { type: 'button', id: 'register-patient' }, t('keys.register'));
  btn.addEventListener('click', () => act(out, btn, async () => {
    const result = await send('identity.register_patient', {});
    flash = receiptView(result);
    await setKey(session.key);
    return undefined;
  }));
  return h('section', { 'aria-labelledby': 'me-h' }, h('h2', { id: 'me-h' }, t('keys.me')),
    h('p', {}, t('keys.unregistered.body')), btn, out);
}

export async function render(main) {
  clear(main, h('h1', {}, t('keys.title')), h('p', { class: 'lead' }, t('keys.lead')));
  if (flash) {
    main.append(h('div', { id: 'keys-flash', role: 'status' }, flash));
    flash = null;
  }
  const me = registerSection();
  if (me) main.append(me);
  try {
    main.append(await storedSection());
  } catch (exc) {
    main.append(errorView(exc));
  }
  main.append(loadSection(), createSection(),
    h('section', { 'aria-labelledby': 'recovery-h' }, h('h2', { id: 'recovery-h' }, t('keys.recovery.title')), h('p', {}, t('keys.recovery.body'))));
}
