/**
 * URL templating: each `{key}` in the endpoint URL is replaced by the percent-encoded value of
 * `data.key`. A key used twice is replaced twice; a key with no data value (missing or null) gets the
 * configured default. Pure: no I/O, no clock.
 *
 * Shared by ingest (to check that a template expands into a valid URL) and delivery (to build it).
 */

export type DataValue = string | number | boolean | null;
export type DataObject = Readonly<Record<string, DataValue>>;

/** A template split once into literal text and placeholder keys: [text, key, text, key, ..., text]. */
export interface CompiledTemplate {
  readonly source: string;
  /** Even indexes are literal text, odd indexes are placeholder keys. Always odd length. */
  readonly parts: readonly string[];
}

const PLACEHOLDER = /\{([^{}]+)\}/g;

export function compileTemplate(source: string): CompiledTemplate {
  const parts: string[] = [];
  let last = 0;
  for (const m of source.matchAll(PLACEHOLDER)) {
    parts.push(source.slice(last, m.index), m[1]!);
    last = m.index! + m[0].length;
  }
  parts.push(source.slice(last));
  return { source, parts };
}

/** The keys a template refers to, in order, repeats included. */
export function placeholderKeys(template: CompiledTemplate): string[] {
  return template.parts.filter((_, i) => i % 2 === 1);
}

/** The text a data value stands for in a URL, before encoding. null is "no value". */
export function valueText(value: DataValue | undefined): string | undefined {
  if (value === undefined || value === null) return undefined;
  return typeof value === 'string' ? value : String(value);
}

/**
 * Expand a template. The default for unmatched keys is inserted percent-encoded too, so a default can
 * never break the URL's structure.
 */
export function expandTemplate(template: CompiledTemplate, data: DataObject, unmatchedDefault: string): string {
  const { parts } = template;
  if (parts.length === 1) return parts[0]!;
  let out = parts[0]!;
  for (let i = 1; i < parts.length; i += 2) {
    const key = parts[i]!;
    const text = Object.prototype.hasOwnProperty.call(data, key) ? valueText(data[key]) : undefined;
    out += encodeComponent(text ?? unmatchedDefault) + parts[i + 1]!;
  }
  return out;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** encodeURIComponent that never throws: JSON may carry lone surrogates, which become U+FFFD. */
export function encodeComponent(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return encodeURIComponent(text.replace(LONE_SURROGATE, '\uFFFD'));
  }
}

/**
 * The template as a URL with every placeholder filled by a neutral `x`, or undefined when that is not an
 * absolute http(s) URL with a host. Used by ingest validation, so that `http://{sub}.example.com/` is
 * accepted as a template, and to see its host and port.
 */
export function probeUrl(source: string): URL | undefined {
  const probe = expandTemplate(compileTemplate(source), {}, 'x');
  let url: URL;
  try {
    url = new URL(probe);
  } catch {
    return undefined;
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' ? url : undefined;
}

/** Whether `url` is an absolute http(s) URL once placeholders are filled (see probeUrl). */
export function isHttpUrlTemplate(source: string): boolean {
  return probeUrl(source) !== undefined;
}

/**
 * What is wrong with a template's placeholders, or undefined: every `{` must open a `{name}` with a
 * non-empty name and no brace inside, and every `}` must close one. `{a`, `{}`, `a}` and `{{a}}` would
 * otherwise be sent as they are (braces are not valid in a URL), which is never what the client meant.
 */
export function placeholderProblem(source: string): string | undefined {
  let i = 0;
  for (;;) {
    const open = source.indexOf('{', i);
    const close = source.indexOf('}', i);
    if (open < 0 && close < 0) return undefined;
    if (open < 0 || (close >= 0 && close < open)) return `has a '}' that closes no placeholder at position ${close}`;
    const end = source.indexOf('}', open + 1);
    const nested = source.indexOf('{', open + 1);
    if (end < 0 || (nested >= 0 && nested < end)) return `has a '{' at position ${open} that opens no {name} placeholder`;
    if (end === open + 1) return `has an empty placeholder {} at position ${open}`;
    i = end + 1;
  }
}

// ------------------------------------------------------------------ sizes, computed without building

/** Characters encodeURIComponent leaves as they are (RFC 3986 unreserved, and !*'()). */
const UNRESERVED = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()") UNRESERVED[c.charCodeAt(0)] = 1;

/** UTF-8 bytes of the code unit at `i` of `text` (a pair counted on its high half; a lone surrogate as U+FFFD). */
function utf8Bytes(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  if (c >= 0xd800 && c <= 0xdbff) {
    const next = text.charCodeAt(i + 1);
    return next >= 0xdc00 && next <= 0xdfff ? 4 : 3;
  }
  if (c >= 0xdc00 && c <= 0xdfff) {
    const prev = text.charCodeAt(i - 1);
    return prev >= 0xd800 && prev <= 0xdbff ? 0 : 3; // the low half of a pair was counted with the high one
  }
  return 3;
}

/** `encodeComponent(text).length`, without building the string. */
export function encodedLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    n += c < 0x80 ? (UNRESERVED[c] ? 1 : 3) : 3 * utf8Bytes(text, i);
  }
  return n;
}

/**
 * `expandTemplate(...).length`, without building the URL: a template with hundreds of placeholders and a
 * long value would expand past what memory (or V8's longest string) allows before any limit could be
 * checked on the result. Each key's encoded length is computed once.
 */
export function expandedLength(template: CompiledTemplate, data: DataObject, unmatchedDefault: string): number {
  const { parts } = template;
  let n = 0;
  for (let i = 0; i < parts.length; i += 2) n += parts[i]!.length;
  if (parts.length === 1) return n;
  const known = new Map<string, number>();
  for (let i = 1; i < parts.length; i += 2) {
    const key = parts[i]!;
    let len = known.get(key);
    if (len === undefined) {
      const text = Object.prototype.hasOwnProperty.call(data, key) ? valueText(data[key]) : undefined;
      len = encodedLength(text ?? unmatchedDefault);
      known.set(key, len);
    }
    n += len;
  }
  return n;
}

/** Bytes of `text` in application/x-www-form-urlencoded (URLSearchParams): space is '+', `*-._` and alphanumerics stay. */
export function formEncodedLength(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += c === 0x20 || (UNRESERVED[c] && c !== 0x21 && c !== 0x7e && c !== 0x27 && c !== 0x28 && c !== 0x29) ? 1 : 3;
    else n += 3 * utf8Bytes(text, i);
  }
  return n;
}

/** Bytes of the form-encoded body of a data object (deliver.ts formBody), without building it. */
export function formBodyLength(data: DataObject): number {
  let n = 0;
  let first = true;
  for (const [k, v] of Object.entries(data)) {
    n += (first ? 0 : 1) + formEncodedLength(k) + 1 + formEncodedLength(valueText(v) ?? '');
    first = false;
  }
  return n;
}
