// About: what the console is, what it does not do yet, and where keys live.

import { clear, h } from '../dom.js';
import { t } from '../i18n.js';

export function render(main) {
  clear(main, h('h1', {}, t('about.title')),
    h('section', { 'aria-labelledby': 'ab-what' }, h('h2', { id: 'ab-what' }, t('about.what')), h('p', {}, t('about.what.body'))),
    h('section', { 'aria-labelledby': 'ab-keys' }, h('h2', { id: 'ab-keys' }, t('about.keys')), h('p', {}, t('about.keys.body'))),
    h('section', { 'aria-labelledby': 'ab-missing', id: 'about-missing' }, h('h2', { id: 'ab-missing' }, t('about.missing')),
      h('ul', {}, h('li', {}, t('about.missing.claims')), h('li', {}, t('about.missing.research')), h('li', {}, t('about.missing.trials')),
        h('li', {}, t('about.missing.recovery')))),
    h('section', { 'aria-labelledby': 'ab-https' }, h('h2', { id: 'ab-https' }, t('about.https')), h('p', {}, t('about.https.body'))),
    h('section', { 'aria-labelledby': 'ab-lib' }, h('h2', { id: 'ab-lib' }, t('about.libs')), h('p', {}, t('about.libs.body'))));
}
