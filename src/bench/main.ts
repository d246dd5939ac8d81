/**
 * `npm run bench -- --mode load --baseline`: the internal benchmarking tool. See docs/benchmarks.md.
 * Prints the report as a table (progress on stderr), or as JSON with --json. Exits 1 when an
 * acknowledged postback did not arrive: a bench that loses count has nothing to report.
 */
import { parseOptions, UsageError, USAGE } from './cli.js';
import { formatProfile } from './profile.js';
import { formatReport } from './report.js';
import { runBench, type BenchOptions } from './run.js';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let options: BenchOptions;
  let json = false;
  try {
    options = parseOptions(argv);
    json = argv.includes('--json');
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      const message = (err as Error).message;
      if (!message) {
        console.log(USAGE); // --help
        process.exit(0);
      }
      console.error(`bench: ${message}\n`);
      console.error(USAGE);
      process.exit(2);
    }
    throw err;
  }
  const { report, profiles, dir } = await runBench(options, { log: (l) => console.error(`bench: ${l}`) });
  if (json) {
    console.log(JSON.stringify({ ...report, ...(profiles.length ? { profiles } : {}) }, null, 2));
  } else {
    console.log(formatReport(report));
    for (const p of profiles) console.log(`\n${formatProfile(`profile ${p.process}`, p.summary)}`);
  }
  if (options.keep) console.error(`bench: run directory kept: ${dir}`);
  if (!report.counts.ok) {
    console.error(`bench: ${report.counts.missing} acknowledged postbacks never arrived`);
    process.exit(1);
  }
  process.exit(0);
}

main().catch((err) => {
  console.error('bench: failed:', err instanceof Error ? err.stack : err);
  process.exit(1);
});
