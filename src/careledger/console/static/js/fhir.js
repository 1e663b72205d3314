// FHIR resources as people read them: a title, then the resource's elements as labelled values
// (codes by their display text, quantities with units, periods as dates). Text only: a narrative's
// XHTML is never rendered as HTML. Decimals arrive as {"$decimal": "72.50"} (docs/records.md) and are
// shown exactly as stored.

import { h } from './dom.js';
import { t } from './i18n.js';

const SKIP = new Set(['resourceType', 'id', 'meta', 'text', 'contained', 'extension', 'modifierExtension', 'implicitRules']);

const isDecimal = (v) => v && typeof v === 'object' && Object.keys(v).length === 1 && typeof v.$decimal === 'string';

export function label(key) {
  return t(`fhir.${key}`, {}, key.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/^./, (c) => c.toUpperCase()));
}

function coding(c) {
  return c.display || [c.code, c.system && c.system.split('/').pop()].filter(Boolean).join(' · ');
}

/** A short text for one FHIR value, or null when it is a structure to show as nested elements. */
export function text(v) {
  if (v === null || v === undefined) return '—';
  if (isDecimal(v)) return v.$decimal;
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) {
    const parts = v.map(text);
    return parts.every((p) => p !== null) ? parts.join('; ') : null;
  }
  if ('coding' in v || ('text' in v && Object.keys(v).length === 1)) {
    return v.text || (v.coding || []).map(coding).join(', ');
  }
  if ('system' in v && 'code' in v && !('value' in v)) return coding(v);
  if ('value' in v && ('unit' in v || 'code' in v)) return `${text(v.value)} ${v.unit || v.code || ''}`.trim();
  if ('start' in v || 'end' in v) return `${v.start || '…'} – ${v.end || '…'}`;
  if ('reference' in v || 'display' in v) return v.display || v.reference;
  if ('family' in v || 'given' in v) return [...(v.given || []), v.family].filter(Boolean).join(' ');
  if ('line' in v || 'city' in v) return [...(v.line || []), v.city, v.state, v.postalCode, v.country].filter(Boolean).join(', ');
  if ('system' in v && 'value' in v) return `${v.value}`;
  return null;
}

function elements(obj, depth) {
  const rows = [];
  for (const [k, v] of Object.entries(obj)) {
    if (SKIP.has(k) || k.startsWith('_')) continue;
    const shown = text(v);
    if (shown !== null) rows.push(h('dt', {}, label(k)), h('dd', {}, shown));
    else if (depth < 3) {
      const items = Array.isArray(v) ? v : [v];
      rows.push(h('dt', {}, label(k)), h('dd', {}, items.map((x) => (x && typeof x === 'object' ? h('dl', { class: 'fhir nested' }, elements(x, depth + 1)) : String(x)))));
    }
  }
  return rows;
}

/** The title of a resource: its type and its main code's text when it has one. */
export function title(resource) {
  const main = resource.code || resource.vaccineCode || resource.medicationCodeableConcept || resource.type;
  const what = main ? text(main) : null;
  return what ? `${label(resource.resourceType)}: ${what}` : label(resource.resourceType);
}

/** A resource (or each entry of a Bundle) as readable sections. */
export function render(resource) {
  if (resource.resourceType === 'Bundle') {
    return h('div', { class: 'fhir-bundle' }, (resource.entry || []).map((e) => render(e.resource)));
  }
  return h('section', { class: 'fhir-resource' }, h('h4', {}, title(resource)), h('dl', { class: 'fhir' }, elements(resource, 0)));
}
