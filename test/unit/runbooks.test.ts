/**
 * The operator documentation holds together: every runbook monit's alerts name exists and says how
 * you got there, every runbook has the sections of the template, and no relative link in the docs
 * (README.md, docs/**) points at a file or heading that is not there.
 *
 *   node --import tsx --test test/unit/runbooks.test.ts
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const runbookDir = join(root, 'docs/runbooks');
const monitSources = [
  ...readdirSync(join(root, 'ansible/roles/monit/templates')).map((f) => join('ansible/roles/monit/templates', f)),
  ...readdirSync(join(root, 'monit')).map((f) => join('monit', f)),
];
const SECTIONS = ['Meaning', 'Impact', 'Diagnosis', 'Mitigation', 'Escalation'];

const read = (path: string): string => readFileSync(join(root, path), 'utf8');

/** Runbook file names monit names: the argument of every `alert <name>.md` and `runbook: <name>.md`. */
function runbooksNamedByMonit(): Map<string, string[]> {
  const named = new Map<string, string[]>();
  for (const source of monitSources) {
    for (const m of read(source).matchAll(/(?:\/alert\s+|runbook:\s*(?:docs\/runbooks\/)?)([A-Za-z0-9._-]+\.md)/g)) {
      const list = named.get(m[1]!) ?? [];
      if (!list.includes(source)) list.push(source);
      named.set(m[1]!, list);
    }
  }
  return named;
}

const runbookFiles = readdirSync(runbookDir).filter((f) => f.endsWith('.md') && f !== 'README.md');

/** `## Heading` sections of a markdown file, outside code blocks, with their text. */
function sections(markdown: string): { title: string; body: string }[] {
  const out: { title: string; body: string }[] = [];
  for (const line of stripCode(markdown).split('\n')) {
    const h = /^## +(.+?)\s*$/.exec(line);
    if (h) out.push({ title: h[1]!, body: '' });
    else if (out.length) out.at(-1)!.body += `${line}\n`;
  }
  return out;
}

/** The markdown with fenced code blocks blanked (headings and links inside them are not real). */
function stripCode(markdown: string): string {
  let fence: string | undefined;
  return markdown
    .split('\n')
    .map((line) => {
      const f = /^\s*(```+|~~~+)/.exec(line);
      if (f) {
        if (fence === undefined) fence = f[1]![0];
        else if (f[1]![0] === fence) fence = undefined;
        return '';
      }
      return fence === undefined ? line : '';
    })
    .join('\n');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of stripCode(markdown).split('\n')) {
    const h = /^#{1,6} +(.+?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = slug(h[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

function markdownFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...markdownFiles(path));
    else if (entry.endsWith('.md')) out.push(path);
  }
  return out;
}

/** Relative link targets of a markdown file (inline links and images), outside code. */
function relativeLinks(markdown: string): string[] {
  const text = stripCode(markdown).replace(/`[^`\n]*`/g, '');
  const out: string[] = [];
  for (const m of text.matchAll(/!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = m[1]!;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, ...
    out.push(target);
  }
  return out;
}

describe('runbooks named by monit', () => {
  const named = runbooksNamedByMonit();

  it('monit names at least one runbook (the scan itself works)', () => {
    assert.ok(named.size >= 5, `found only ${[...named.keys()].join(', ')} in ${monitSources.join(', ')}`);
  });

  it('the alert script points at docs/runbooks/, which exists', () => {
    assert.match(read('monit/alert'), /runbook: docs\/runbooks\/\$1/);
    assert.ok(existsSync(runbookDir));
  });

  for (const [name, sources] of named) {
    it(`${name} (named in ${sources.join(', ')}) exists and quotes the alert that leads to it`, () => {
      const path = join(runbookDir, name);
      assert.ok(existsSync(path), `docs/runbooks/${name} is missing`);
      const meaning = sections(readFileSync(path, 'utf8')).find((s) => s.title === 'Meaning');
      assert.ok(meaning, `docs/runbooks/${name} has no Meaning section`);
      assert.ok(
        readFileSync(path, 'utf8').includes(`-- runbook: docs/runbooks/${name}`),
        `docs/runbooks/${name} does not quote its alerts.log line ("... -- runbook: docs/runbooks/${name}")`,
      );
    });
  }
});

describe('every runbook', () => {
  it('there are runbooks to check', () => {
    assert.ok(runbookFiles.length >= 7, `only ${runbookFiles.join(', ')}`);
  });

  const index = readFileSync(join(runbookDir, 'README.md'), 'utf8');
  for (const file of runbookFiles) {
    const markdown = readFileSync(join(runbookDir, file), 'utf8');

    it(`${file} has the sections ${SECTIONS.join(', ')}, in that order`, () => {
      const titles = sections(markdown).map((s) => s.title);
      assert.deepEqual(
        titles.filter((t) => SECTIONS.includes(t)),
        SECTIONS,
        `${file} has sections ${JSON.stringify(titles)}`,
      );
      for (const s of sections(markdown).filter((x) => SECTIONS.includes(x.title))) {
        assert.ok(s.body.trim().length > 0, `${file}: section ${s.title} is empty`);
      }
    });

    it(`${file} says which monit check, alert or log event leads to it`, () => {
      const meaning = sections(markdown).find((s) => s.title === 'Meaning')?.body ?? '';
      assert.match(meaning, /monit|"event":"[a-z_]+"/, `${file}: Meaning names no monit check and quotes no log event`);
    });

    it(`${file} has copy-pasteable diagnosis commands`, () => {
      const diagnosis = markdown.slice(markdown.indexOf('## Diagnosis'), markdown.indexOf('## Mitigation'));
      assert.match(diagnosis, /```sh\n/, `${file}: Diagnosis has no sh code block`);
    });

    it(`${file} is listed in docs/runbooks/README.md`, () => {
      assert.ok(index.includes(`](${file})`), `docs/runbooks/README.md does not link ${file}`);
    });
  }
});

describe('relative links in README.md and docs/', () => {
  const files = [join(root, 'README.md'), ...markdownFiles(join(root, 'docs'))];

  it('finds the documents and their links', () => {
    assert.ok(files.some((f) => f.endsWith('operations.md')));
    assert.ok(files.reduce((n, f) => n + relativeLinks(readFileSync(f, 'utf8')).length, 0) >= 20);
  });

  for (const file of files) {
    const name = relative(root, file);
    it(`every relative link in ${name} resolves`, () => {
      const markdown = readFileSync(file, 'utf8');
      const broken: string[] = [];
      for (const link of relativeLinks(markdown)) {
        const [pathPart, anchor] = link.split('#', 2) as [string, string | undefined];
        const target = pathPart === '' ? file : resolve(dirname(file), decodeURIComponent(pathPart));
        if (!existsSync(target)) {
          broken.push(`${link} (no file ${relative(root, target)})`);
          continue;
        }
        if (anchor && target.endsWith('.md') && !anchors(readFileSync(target, 'utf8')).has(anchor.toLowerCase())) {
          broken.push(`${link} (no heading #${anchor} in ${relative(root, target)})`);
        }
      }
      assert.deepEqual(broken, [], `${name} has broken links`);
    });
  }
});
