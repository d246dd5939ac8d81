/**
 * URLs carry partners' secrets; logs show them with the secrets replaced by [REDACTED]:
 *  - userinfo (`http://user:password@host/`), always;
 *  - the values of query (and fragment) parameters whose name contains one of the configured words
 *    (LOG_REDACT_QUERY_PARAMS: token, secret, key, ...), in any case, whatever the separator (`&` or
 *    `;`), brackets (`token[]=`, `auth[token]=`) or percent-encoding (`%74oken=`, even twice) of the name;
 *  - whatever the configured path patterns match (LOG_REDACT_PATH_PATTERNS; a pattern with groups
 *    redacts only its groups).
 * Pure string work, so the rest of the URL is logged exactly as it was sent; over-redacting a harmless
 * `monkey=` is the price of never logging an `x_api_key=`.
 */

export const REDACTED = '[REDACTED]';

/** Decode %XX sequences that are valid UTF-8, leave the rest; repeated, so double encoding is seen through. */
function decodeName(raw: string): string {
  let name = raw.replace(/\+/g, ' ');
  for (let round = 0; round < 3 && name.includes('%'); round++) {
    const next = name.replace(/(?:%[0-9a-f]{2})+/gi, (seq) => {
      try {
        return decodeURIComponent(seq);
      } catch {
        return seq;
      }
    });
    if (next === name) break;
    name = next;
  }
  return name.toLowerCase();
}

function redactParams(query: string, words: readonly string[]): string {
  if (words.length === 0 || query === '') return query;
  return query.replace(/([^&;=]*)=([^&;]*)/g, (pair: string, rawName: string, value: string) => {
    if (value === '') return pair;
    const name = decodeName(rawName);
    for (const w of words) if (name.includes(w)) return `${rawName}=${REDACTED}`;
    return pair;
  });
}

function redactPath(path: string, patterns: readonly RegExp[]): string {
  let out = path;
  for (const source of patterns) {
    // Indices of the match and its groups ('d'), applied from the end so earlier ones stay valid.
    const re = new RegExp(source.source, source.flags.includes('d') ? source.flags : `${source.flags}d`);
    if (!re.global) continue;
    const ranges: [number, number][] = [];
    for (const m of out.matchAll(re)) {
      const idx = m.indices!;
      const groups = idx.slice(1).filter((r): r is [number, number] => r !== undefined);
      for (const r of groups.length ? groups : [idx[0]!]) if (r[1] > r[0]) ranges.push(r);
    }
    ranges.sort((a, b) => b[0] - a[0]);
    let limit = Infinity;
    for (const [from, to] of ranges) {
      if (to > limit) continue; // overlaps one already replaced
      out = out.slice(0, from) + REDACTED + out.slice(to);
      limit = from;
    }
  }
  return out;
}

/**
 * The URL as it may be logged. `words`: lower-case parts of parameter names to redact;
 * `pathPatterns`: global regular expressions (config.ts compiles them).
 */
export function redactUrl(url: string, words: readonly string[], pathPatterns: readonly RegExp[] = []): string {
  const scheme = url.indexOf('://');
  const authorityStart = scheme < 0 ? 0 : scheme + 3;
  let authorityEnd = url.length;
  for (const c of ['/', '?', '#']) {
    const i = url.indexOf(c, authorityStart);
    if (i >= 0 && i < authorityEnd) authorityEnd = i;
  }
  let authority = url.slice(authorityStart, authorityEnd);
  const at = authority.lastIndexOf('@');
  if (scheme >= 0 && at >= 0) authority = `${REDACTED}${authority.slice(at)}`;

  const rest = url.slice(authorityEnd);
  const q = rest.indexOf('?');
  const h = rest.indexOf('#');
  const pathEnd = q >= 0 && (h < 0 || q < h) ? q : h >= 0 ? h : rest.length;
  const path = redactPath(rest.slice(0, pathEnd), pathPatterns);
  let query = '';
  let fragment = '';
  if (q >= 0 && (h < 0 || q < h)) {
    query = `?${redactParams(rest.slice(q + 1, h >= 0 ? h : rest.length), words)}`;
  }
  if (h >= 0) fragment = `#${redactParams(rest.slice(h + 1), words)}`;
  return url.slice(0, authorityStart) + authority + path + query + fragment;
}

/** At most `max` characters of `text`, saying how many were cut. */
export function excerpt(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}…[+${text.length - max} chars]`;
}

/** The host of a URL, for grouping logs and metrics by partner; '' when it cannot be parsed. */
export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}
