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
 * Whether `url` is an absolute http(s) URL once placeholders are filled. Used by ingest validation with
 * a neutral filler so that `http://{sub}.example.com/` is accepted as a template.
 */
export function isHttpUrlTemplate(source: string): boolean {
  const probe = expandTemplate(compileTemplate(source), {}, 'x');
  let url: URL;
  try {
    url = new URL(probe);
  } catch {
    return false;
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
}
