/**
 * Reads a V8 CPU profile (`node --cpu-prof`, a .cpuprofile file) and lists where the time went: self
 * time per function (name, file:line), the top entries, and the share spent in the categories that
 * matter here (garbage collection, idle, our code, dependencies, Node internals).
 */

export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
    readonly children?: readonly number[];
  }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

export interface ProfileEntry {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  readonly share: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly top: ProfileEntry[];
  /** Functions by inclusive time (themselves and what they called), idle and GC excluded. */
  readonly topInclusive: ProfileEntry[];
  /** Share of samples per category: idle, gc, program (native/internal), app (src/), deps (node_modules), node (node:*). */
  readonly categories: Record<string, number>;
}

export function categoryOf(url: string, name: string): string {
  if (name === '(idle)') return 'idle';
  if (name === '(garbage collector)') return 'gc';
  if (name === '(program)' || name === '(root)') return 'program';
  if (url.includes('/node_modules/')) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    return `dep:${m ? m[1] : '?'}`;
  }
  if (url.startsWith('node:') || url === '') return 'node';
  if (url.includes('/dist/') || url.includes('/src/')) return 'app';
  return 'other';
}

export function summariseProfile(p: CpuProfile, topN = 15): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  let total = 0;
  for (const v of selfUs.values()) total += v;
  const byFn = new Map<string, { name: string; where: string; us: number }>();
  const cats: Record<string, number> = {};
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const name = functionName || '(anonymous)';
    const file = url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/(dist|src)\//, '$1/');
    const where = url ? `${file}:${lineNumber + 1}` : '';
    const key = `${name}@${where}`;
    const e = byFn.get(key) ?? { name, where, us: 0 };
    e.us += us;
    byFn.set(key, e);
    const cat = categoryOf(url, functionName);
    cats[cat] = (cats[cat] ?? 0) + us;
  }
  // Inclusive time: a node's self time plus its descendants', added once per function per stack.
  const inclusive = new Map<string, { name: string; where: string; us: number }>();
  const keyOf = (id: number) => {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const name = functionName || '(anonymous)';
    const file = url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/(dist|src)\//, '$1/');
    return { key: `${name}@${url ? `${file}:${lineNumber + 1}` : ''}`, name, where: url ? `${file}:${lineNumber + 1}` : '' };
  };
  const walk = (id: number, onStack: Set<string>): number => {
    const n = byId.get(id);
    if (!n) return 0;
    let us = selfUs.get(id) ?? 0;
    const k = keyOf(id);
    const fresh = !onStack.has(k.key);
    if (fresh) onStack.add(k.key);
    for (const c of n.children ?? []) us += walk(c, onStack);
    if (fresh) {
      onStack.delete(k.key);
      const e = inclusive.get(k.key) ?? { name: k.name, where: k.where, us: 0 };
      e.us += us;
      inclusive.set(k.key, e);
    }
    return us;
  };
  const childIds = new Set(p.nodes.flatMap((n) => n.children ?? []));
  for (const n of p.nodes) if (!childIds.has(n.id)) walk(n.id, new Set());
  const entry = (e: { name: string; where: string; us: number }) => ({
    name: e.name, where: e.where, selfMs: Math.round(e.us / 100) / 10, share: total ? Math.round((e.us / total) * 1000) / 1000 : 0,
  });
  const topInclusive = [...inclusive.values()]
    .filter((e) => !/^\((root|program|idle|garbage collector)\)$/.test(e.name))
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map(entry);
  const top = [...byFn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, topN)
    .map((e) => ({ name: e.name, where: e.where, selfMs: Math.round(e.us / 100) / 10, share: total ? Math.round((e.us / total) * 1000) / 1000 : 0 }));
  const categories: Record<string, number> = {};
  for (const [k, v] of Object.entries(cats).sort((a, b) => b[1] - a[1])) categories[k] = total ? Math.round((v / total) * 1000) / 1000 : 0;
  return { totalMs: Math.round(total / 1000), top, topInclusive, categories };
}

export function formatProfile(label: string, s: ProfileSummary): string {
  const lines = [`${label}: ${s.totalMs} ms sampled; ` + Object.entries(s.categories).slice(0, 8).map(([k, v]) => `${k} ${(v * 100).toFixed(1)}%`).join(', ')];
  lines.push('  self time:');
  for (const e of s.top) lines.push(`  ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.name}  ${e.where}`);
  lines.push('  inclusive time (with what it calls):');
  for (const e of s.topInclusive) lines.push(`  ${(e.share * 100).toFixed(1).padStart(5)}%  ${e.name}  ${e.where}`);
  return lines.join('\n');
}
