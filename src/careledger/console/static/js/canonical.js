// Canonical JSON: the RFC 8785 (JCS) profile of docs/protocol.md section 1, byte for byte.
// Integers only (|n| <= 2^53-1, no -0), ASCII object keys sorted by code point, no whitespace,
// strings with exactly the RFC 8785 escapes, nesting at most 32 levels below the top value.
// Anything outside the profile throws CanonicalError, so the page never signs bytes a node refuses.

export class CanonicalError extends Error {}

const MAX_DEPTH = 32;

function escapeString(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) throw new CanonicalError('lone surrogate in a string');
      out += s[i] + s[i + 1];
      i++;
      continue;
    }
    if (c >= 0xdc00 && c <= 0xdfff) throw new CanonicalError('lone surrogate in a string');
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += '\\\\';
    else if (c === 0x08) out += '\\b';
    else if (c === 0x09) out += '\\t';
    else if (c === 0x0a) out += '\\n';
    else if (c === 0x0c) out += '\\f';
    else if (c === 0x0d) out += '\\r';
    else if (c < 0x20) out += '\\u00' + c.toString(16).padStart(2, '0');
    else out += s[i];
  }
  return out + '"';
}

function encodeValue(v, depth) {
  if (depth > MAX_DEPTH) throw new CanonicalError('value nested deeper than 32 levels');
  if (v === null || v === true || v === false) return String(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new CanonicalError(`number ${v} is not a safe integer`);
    if (Object.is(v, -0)) throw new CanonicalError('-0 is not canonical');
    return String(v);
  }
  if (typeof v === 'string') return escapeString(v);
  if (Array.isArray(v)) return '[' + v.map((x) => encodeValue(x, depth + 1)).join(',') + ']';
  if (typeof v === 'object') {
    const keys = Object.keys(v);
    for (const k of keys) {
      if (!/^[\x00-\x7f]*$/.test(k)) throw new CanonicalError(`object key ${JSON.stringify(k)} is not ASCII`);
      if (v[k] === undefined) throw new CanonicalError(`object member ${k} is undefined`);
    }
    keys.sort();
    return '{' + keys.map((k) => escapeString(k) + ':' + encodeValue(v[k], depth + 1)).join(',') + '}';
  }
  throw new CanonicalError(`a ${typeof v} has no canonical encoding`);
}

/** The canonical text of `value` (throws CanonicalError outside the profile). */
export function encode(value) {
  return encodeValue(value, 0);
}

/** The canonical UTF-8 bytes of `value`. */
export function encodeBytes(value) {
  return new TextEncoder().encode(encode(value));
}

/** Parse `text` and check it is already canonical (as the node's codec.decode does). */
export function decodeCanonical(text) {
  const value = JSON.parse(text);
  if (encode(value) !== text) throw new CanonicalError('text is not canonical');
  return value;
}
