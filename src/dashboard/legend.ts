/**
 * What a chart's legend shows when the pointer is not on it: each series' latest value. uPlot's
 * legend shows the values under the cursor and `--` without one; at low traffic most buckets are
 * empty and the legend said nothing until hovered. Pure, so it is tested without a browser.
 */

/**
 * For aligned chart data (x values, then one array per series, null where a bucket has no value):
 * the index of each series' last non-null value (null when it has none). The x entry (index 0)
 * gets the latest of those, so the legend's time names the newest value shown.
 */
export function latestIndexes(data: readonly ArrayLike<number | null | undefined>[]): (number | null)[] {
  const out: (number | null)[] = [null];
  for (let s = 1; s < data.length; s++) {
    const values = data[s]!;
    let idx: number | null = null;
    for (let i = values.length - 1; i >= 0; i--) {
      if (values[i] !== null && values[i] !== undefined) {
        idx = i;
        break;
      }
    }
    out.push(idx);
  }
  const found = out.slice(1).filter((i): i is number => i !== null);
  out[0] = found.length ? Math.max(...found) : null;
  return out;
}
