/**
 * Bytes on the wire per inference, detail mode against summary mode, in the same run: the
 * real device service (CSV replay -> predict -> result writer -> outbox -> QoS 1
 * publishes to a local aedes broker) runs the same readings once per mode, and the bench
 * counts the payload bytes of every acknowledged batch (the device's own 'published' events).
 *
 *   npx tsx bench/device-wire.ts [--json] [--rates 10,1000] [--seconds 60] [--compress 10]
 *   npm run bench -- device-wire      (also after bench/device.ts in `npm run bench -- device`)
 *
 * Time is compressed `--compress` times: a gateway simulated at R inferences/s replays at
 * R x compress readings/s, with detail mode's batch age (500 ms) and summary mode's interval
 * (10 s) divided by the same factor, so every batch holds what it would hold in real time.
 * `--seconds` is simulated time per run. One thing does not scale: the CSV source hands over
 * readings in 50 ms ticks, so a compressed slow gateway's detail batches hold more results
 * than in real time (10 inf/s at 10x: ~10 per message instead of ~5). That understates
 * detail mode's messages, never summary mode's advantage.
 *
 * Cost: IoT Core bills broker messages per 5 KB of payload (shared/aggregation/prices.ts);
 * detail mode goes by the broker, summary mode by Basic Ingest, which has no messaging
 * charge (its message is still a rule trigger and a Kinesis action, in 5 KB units too: that
 * is printed beside it). The full cloud cost per inference is bench/fleet-scale.ts's figure.
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SUMMARY_INTERVAL_MS } from '../device/results/summary-batcher.ts';
import { startDevice } from '../device/service.ts';
import { iotUnits, PRICES } from '../shared/aggregation/prices.ts';
import { initTf } from '../shared/tf.ts';
import { BENCH_KEYS, buildModel, rows, startBroker, storeServingModel, writeCsv } from './device.ts';

/** Detail mode's default batch age (ResultBatcher). */
const DETAIL_BATCH_AGE_MS = 500;

export interface WireLine {
  bench: 'device-wire';
  mode: 'detail' | 'summary';
  route: 'broker' | 'basic-ingest';
  /** Simulated inferences per second of one gateway. */
  inferencesPerSecond: number;
  inferences: number;
  messages: number;
  /** Inferences per message (summary: the cells of one interval). */
  inferencesPerMessage: number;
  bytes: number;
  bytesPerInference: number;
  /** 5 KB units the messages are metered in. */
  meteredUnits: number;
  /** IoT Core messaging per million inferences: 0 by Basic Ingest. */
  messagingUsdPerMillion: number;
  /** What the same messages would cost through the broker (Basic Ingest's saving). */
  messagingIfBrokerUsdPerMillion: number;
  /** Rule triggers plus Kinesis/Lambda actions per million inferences (either route). */
  rulesUsdPerMillion: number;
  /** Publishes per second one gateway makes (IoT Core allows 100 per connection). */
  publishesPerSecond: number;
}

interface RunSpec {
  mode: 'detail' | 'summary';
  rate: number;
  seconds: number;
  compress: number;
}

async function runMode(spec: RunSpec, ctx: { dir: string; csv: string; modelsDir: string; mqtt: string }) {
  const stateDir = join(ctx.dir, `${spec.mode}-${spec.rate}`);
  await cp(ctx.modelsDir, join(stateDir, 'models'), { recursive: true });
  const limit = Math.round(spec.rate * spec.seconds);
  const device = await startDevice({
    thing: `wire-${spec.mode}`,
    model: 'bench',
    stateDir,
    mqttEndpoint: ctx.mqtt,
    publicKeyPem: BENCH_KEYS.publicKeyPem,
    source: { kind: 'csv', file: ctx.csv, rate: spec.rate * spec.compress, limit },
    batch: { maxAgeMs: DETAIL_BATCH_AGE_MS / spec.compress },
    results:
      spec.mode === 'summary'
        ? {
            mode: 'summary',
            summaryIntervalMs: DEFAULT_SUMMARY_INTERVAL_MS / spec.compress,
            basicIngestStage: 'bench',
          }
        : { mode: 'detail' },
  });
  const sizes: number[] = [];
  device.events.on('published', ({ bytes }: { bytes: number }) => sizes.push(bytes));
  await device.finished;
  const snapshot = device.status();
  await device.stop();
  return { inferences: snapshot.published, sizes };
}

export function wireLine(spec: RunSpec, run: { inferences: number; sizes: number[] }): WireLine {
  const { inferences, sizes } = run;
  const bytes = sizes.reduce((sum, size) => sum + size, 0);
  const meteredUnits = sizes.reduce((sum, size) => sum + iotUnits(size), 0);
  const perMillion = (units: number, pricePerMillion: number) =>
    round((units / inferences) * pricePerMillion, 6);
  const route = spec.mode === 'summary' ? 'basic-ingest' : 'broker';
  return {
    bench: 'device-wire',
    mode: spec.mode,
    route,
    inferencesPerSecond: spec.rate,
    inferences,
    messages: sizes.length,
    inferencesPerMessage: round(inferences / sizes.length, 1),
    bytes,
    bytesPerInference: round(bytes / inferences, 3),
    meteredUnits,
    messagingUsdPerMillion: route === 'broker' ? perMillion(meteredUnits, PRICES.iot.messagePerMillion) : 0,
    messagingIfBrokerUsdPerMillion: perMillion(meteredUnits, PRICES.iot.messagePerMillion),
    rulesUsdPerMillion: perMillion(
      meteredUnits,
      PRICES.iot.ruleTriggeredPerMillion + PRICES.iot.actionExecutedPerMillion,
    ),
    publishesPerSecond: round(sizes.length / spec.seconds, 3),
  };
}

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

export async function main(argv = process.argv.slice(2)) {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      rates: { type: 'string', default: '10,1000' },
      seconds: { type: 'string', default: '60' },
      compress: { type: 'string', default: '10' },
    },
  });
  const rates = values.rates.split(',').map(Number);
  const seconds = Number(values.seconds);
  const compress = Number(values.compress);
  if (rates.some((rate) => !(rate > 0)) || !(seconds > 0) || !(compress >= 1))
    throw new Error('--rates takes positive numbers (e.g. 10,1000), --seconds > 0, --compress >= 1');
  const backend = await initTf();
  const dir = await mkdtemp(join(tmpdir(), 'edgeloop-wire-'));
  const broker = await startBroker();
  try {
    const { modelJson, weights } = await buildModel();
    const seeded = join(dir, 'seed');
    await storeServingModel(seeded, modelJson, weights, backend);
    const csv = join(dir, 'rows.csv');
    await writeCsv(csv, rows(2_048));
    const ctx = { dir, csv, modelsDir: join(seeded, 'models'), mqtt: broker.url };
    if (!values.json)
      console.log(
        `device-wire: the device service per mode on the same readings, ${seconds} s simulated per run, time compressed ${compress}x`,
      );
    const lines: WireLine[] = [];
    for (const rate of rates) {
      for (const mode of ['detail', 'summary'] as const) {
        const spec = { mode, rate, seconds, compress };
        const line = wireLine(spec, await runMode(spec, ctx));
        lines.push(line);
        if (values.json) console.log(JSON.stringify(line));
        else
          console.log(
            `  ${String(rate).padStart(5)} inf/s  ${mode.padEnd(7)} by ${line.route.padEnd(12)} ${line.messages} messages of ${line.inferencesPerMessage} inferences, ${line.bytesPerInference} B/inference, messaging $${line.messagingUsdPerMillion}/M inferences (by the broker $${line.messagingIfBrokerUsdPerMillion}), rules+action $${line.rulesUsdPerMillion}/M`,
          );
      }
      const [detail, summary] = lines.slice(-2) as [WireLine, WireLine];
      const ratio = round(detail.bytesPerInference / summary.bytesPerInference, 1);
      if (values.json)
        console.log(
          JSON.stringify({ bench: 'device-wire', inferencesPerSecond: rate, detailOverSummaryBytes: ratio }),
        );
      else
        console.log(`  ${String(rate).padStart(5)} inf/s  summary sends ${ratio}x fewer bytes per inference`);
    }
    return lines;
  } finally {
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
