/**
 * Issue 15's done-when run: `edgeloop device` on a 3 MB tmpfs state dir replays a CSV at
 * 3,000 readings/s with --limit 100000 while the whole local stack is stopped for 30 s.
 * Prints the figures as one JSON object: results stored while full, time from the disk
 * freeing to the source resuming (and from the stack's return, which the MQTT reconnect
 * backoff dominates), dropped count, distinct results aggregated. Needs root.
 *
 *   npx tsx bench/disk-full.ts [--limit 100000] [--rate 3000] [--outage-s 30] [--size 3m]
 */
import { parseArgs } from 'node:util';
import { pauseFigures, startDiskFullBed, summaryOf } from './support/disk-full.ts';
import { until } from './support/local-stack.ts';
import { tmpfsUnavailable } from './support/tmpfs.ts';

const { values } = parseArgs({
  options: {
    limit: { type: 'string', default: '100000' },
    rate: { type: 'string', default: '3000' },
    'outage-s': { type: 'string', default: '30' },
    size: { type: 'string', default: '3m' },
    verbose: { type: 'boolean', default: false },
  },
});
if (tmpfsUnavailable) throw new Error(`cannot run: ${tmpfsUnavailable}`);
const limit = Number(values.limit);
const rate = Number(values.rate);
const outageMs = Number(values['outage-s']) * 1000;
const say = (line: string) => process.stderr.write(`[disk-full] ${line}\n`);

const bed = await startDiskFullBed('disk-full-bench');
try {
  const disk = await bed.stateDisk(values.size);
  const gateway = bed.gateway('gw-disk-bench', disk.dir, { limit, rate });
  if (values.verbose) gateway.child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
  await until(async () => (await bed.aggregated()) >= 5_000, 'results aggregated before the outage');
  say('stopping the local stack');
  const stoppedAt = Date.now();
  await bed.stopStack();
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, outageMs - (Date.now() - stoppedAt))));
  say(`starting the local stack again after ${Date.now() - stoppedAt} ms`);
  const restartedAt = Date.now();
  await bed.startStack();
  const exit = await gateway.exit;
  const exitedAt = Date.now();
  const since = (at: number | undefined) => (at === undefined ? undefined : at - restartedAt);
  await until(
    async () => (await bed.aggregated()) >= limit,
    `all ${limit} results aggregated`,
    120_000,
  ).catch((error: Error) => say(error.message));
  const log = gateway.output();
  const summary = summaryOf(log);
  const resumed = log.match(/source resumed after/);
  console.log(
    JSON.stringify({
      limit,
      rate,
      outageMs,
      exitCode: exit.code,
      ...pauseFigures(log),
      dropped: summary.dropped,
      aggregated: await bed.aggregated(),
      stackBackToReconnectMs: since(gateway.arrivalOf(/\] (connected|resumed)/, restartedAt)),
      stackBackToSourceResumedMs: since(gateway.arrivalOf(/source resumed/, restartedAt)),
      stackBackToExitMs: exitedAt - restartedAt,
      resumedOnce: Boolean(resumed),
      stackDumpInLog: /\n\s+at |function\(|\.wasm/.test(log),
      logBytes: log.length,
    }),
  );
  if (values.verbose) say(log.slice(-4000));
} finally {
  await bed.close();
}
