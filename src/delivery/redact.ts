/**
 * URLs carry partners' tokens: logs show them with the values of named query parameters replaced.
 * Pure string work on the query, so the rest of the URL is logged exactly as it was sent.
 */
export function redactUrl(url: string, params: readonly string[]): string {
  if (params.length === 0) return url;
  const q = url.indexOf('?');
  if (q < 0) return url;
  const hash = url.indexOf('#', q);
  const end = hash < 0 ? url.length : hash;
  const query = url.slice(q + 1, end);
  const redacted = query
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      if (eq < 0) return pair;
      let name = pair.slice(0, eq);
      try {
        name = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        /* keep the raw name */
      }
      return params.includes(name.toLowerCase()) ? `${pair.slice(0, eq)}=[REDACTED]` : pair;
    })
    .join('&');
  return url.slice(0, q + 1) + redacted + url.slice(end);
}

/** The host of a URL, for grouping logs and metrics by partner; '' when it cannot be parsed. */
export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '';
  }
}
