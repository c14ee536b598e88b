/**
 * Anomaly detection (#31), all figures measured in this run on the same generated data:
 *
 * - The data: pump telemetry at one reading a minute (shared/anomaly-dataset.ts). Training:
 *   pumps 1-6, two days of normal operation. Test: pumps 7-12, which training never saw, one
 *   day each with two injected faults an hour long (spike, slow drift, stuck sensor, noise
 *   burst, broken correlation, in turn), and the same pumps on another day with none.
 * - edgeloop rows: `"task": "anomaly"` with `time` and `series`, a result per reading.
 * - edgeloop windows: `"task": "anomaly"` with a `window` (30 min of readings every 5 min,
 *   statistical and spectral features), a result per window.
 *   Both are scored by the gateway's own replay (`scoreReadings`), events by their rule
 *   (`anomalyEvents`); each threshold is calibrated by the trainer on its held-out normal data.
 * - bare: Hotelling T² on the readings standardized by the training data, thresholded at the
 *   training T²'s 99th percentile, with the same event rule over its verdicts.
 *
 * Printed for each: event recall (a fault is found when an event of its pump overlaps it,
 * ending at most 10 minutes after it), false alarms per pump-day (events on the normal day,
 * and events on the faulty day that overlap no fault), median detection delay (fault start to
 * the first overlapping event's start) and pointwise F1 (a reading is positive inside a fault;
 * a window's verdict answers for the readings of its last stride).
 * Targets: event recall >= 0.9, <= 1 false alarm per pump-day, pointwise F1 above the bare's.
 * `npx tsx bench/anomaly.ts` (`npm run bench -- anomaly`).
 */
import { loadModelFromBytes } from '../device/model/model.ts';
import { anomalyEvents, scoreReadings } from '../device/score.ts';
import { type AnomalyEvent, EventTracker } from '../shared/anomaly.ts';
import { generatePumpCsv, type InjectedFault, PUMP_CHANNELS } from '../shared/anomaly-dataset.ts';
import { parseCsvReadings, type Reading } from '../shared/dataset/readings.ts';
import { type TrainingConfigInput, TrainingConfigSchema } from '../shared/schemas.ts';
import { initTf } from '../shared/tf.ts';
import { trainWindowsFromCsv } from '../shared/timeseries/train.ts';
import { type TrainingOutcome, trainFromCsv } from '../shared/training/train.ts';
import { columnScale, solve } from './support/linear.ts';
import { releasedManifest } from './support/released-manifest.ts';

const RULE = { k: 3, n: 5, m: 5 };
const SLACK_MS = 10 * 60_000;

interface Verdicts {
  anomalous: boolean[];
  events: AnomalyEvent[];
}

/** Hotelling T² of standardized readings against the training covariance, 99th-percentile threshold. */
function hotelling(train: readonly Reading[]): (readings: readonly Reading[]) => Verdicts {
  const vector = (r: Reading) => PUMP_CHANNELS.map((c) => Number(r[c]));
  const x = train.map(vector);
  const { mean, std } = columnScale(x);
  const z = (v: number[]) => v.map((value, j) => (value - (mean[j] as number)) / (std[j] as number));
  const d = PUMP_CHANNELS.length;
  const cov = Array.from({ length: d }, () => new Array<number>(d).fill(0));
  for (const row of x.map(z))
    for (let i = 0; i < d; i++)
      for (let j = 0; j < d; j++)
        (cov[i] as number[])[j] = (cov[i]?.[j] ?? 0) + ((row[i] ?? 0) * (row[j] ?? 0)) / x.length;
  const t2 = (r: Reading) => {
    const zr = z(vector(r));
    const w = solve(cov, zr);
    return zr.reduce((s, v, i) => s + v * (w[i] as number), 0);
  };
  const sorted = train.map(t2).sort((a, b) => a - b);
  const threshold = sorted[Math.ceil(0.99 * sorted.length) - 1] as number;
  return (readings) => {
    const tracker = new EventTracker(RULE);
    const events: AnomalyEvent[] = [];
    const anomalous = readings.map((r) => {
      const score = t2(r);
      const closed = tracker.push(String(r.pump), Number(r.ts), {
        anomaly: score > threshold,
        score,
        channels: [],
      }).closed;
      if (closed) events.push(closed);
      return score > threshold;
    });
    events.push(...tracker.flush());
    return { anomalous, events };
  };
}

function scores(
  readings: readonly Reading[],
  verdicts: Verdicts,
  faults: readonly InjectedFault[],
  normal: Verdicts,
  pumpDays: number,
) {
  const overlaps = (e: AnomalyEvent, f: InjectedFault) =>
    e.series === f.pump && e.start <= f.end + SLACK_MS && e.end >= f.start;
  const found = faults.map(
    (f) => verdicts.events.filter((e) => overlaps(e, f)).sort((a, b) => a.start - b.start)[0],
  );
  const recall = found.filter(Boolean).length / faults.length;
  const delays = found.flatMap((e, i) =>
    e ? [Math.max(0, e.start - (faults[i] as InjectedFault).start) / 60_000] : [],
  );
  delays.sort((a, b) => a - b);
  const falseEvents =
    verdicts.events.filter((e) => !faults.some((f) => overlaps(e, f))).length + normal.events.length;
  const inFault = readings.map((r) =>
    faults.some((f) => f.pump === r.pump && Number(r.ts) >= f.start && Number(r.ts) <= f.end),
  );
  let tp = 0;
  let fp = 0;
  let fn = 0;
  verdicts.anomalous.forEach((a, i) => {
    if (a && inFault[i]) tp++;
    else if (a) fp++;
    else if (inFault[i]) fn++;
  });
  const f1 = tp ? (2 * tp) / (2 * tp + fp + fn) : 0;
  return {
    recall,
    falsePerDay: falseEvents / pumpDays,
    delay: delays.length ? (delays[Math.floor(delays.length / 2)] as number) : Number.NaN,
    f1,
    kindsMissed: faults.filter((_, i) => !found[i]).map((f) => f.kind),
  };
}

/**
 * The window model's window: half an hour of readings, one result every five minutes
 * (ANOMALY_WINDOW='{"bands":2}' overrides fields, to measure variants).
 */
const WINDOW = {
  time: 'ts',
  series: 'pump',
  sizeMs: 30 * 60_000,
  strideMs: 5 * 60_000,
  frequencyHz: 1 / 60,
  ...(JSON.parse(process.env.ANOMALY_WINDOW ?? '{}') as Record<string, unknown>),
};

/**
 * Each reading's verdict from window results: the window that ends at or after it within one
 * stride (a window's result answers for the readings it added), else normal.
 */
export function readingVerdicts(
  readings: readonly Reading[],
  results: readonly { window?: { series: string; end: number }; anomaly?: boolean }[],
  strideMs: number,
): boolean[] {
  const bySeries = new Map<string, { end: number; anomaly: boolean }[]>();
  for (const r of results) {
    if (!r.window) continue;
    const list = bySeries.get(r.window.series) ?? [];
    list.push({ end: r.window.end, anomaly: r.anomaly === true });
    bySeries.set(r.window.series, list);
  }
  for (const list of bySeries.values()) list.sort((a, b) => a.end - b.end);
  return readings.map((reading) => {
    const list = bySeries.get(String(reading.pump)) ?? [];
    const t = Number(reading.ts);
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((list[mid] as { end: number }).end < t) lo = mid + 1;
      else hi = mid;
    }
    const w = list[lo];
    return w !== undefined && w.end - t < strideMs && w.anomaly;
  });
}

type Scorer = (readings: Reading[]) => Promise<Verdicts>;

/** A trained edgeloop model as the gateway's replay runs it, with its events by its rule. */
async function gatewayScorer(outcome: TrainingOutcome): Promise<Scorer> {
  const manifest = releasedManifest(outcome, { model: 'pumps' });
  return async (readings) => {
    // scoreReadings disposes the model with its engine: one load per file.
    const model = await loadModelFromBytes(outcome.artifacts.modelJson, outcome.artifacts.weights, manifest);
    const { results } = await scoreReadings(model, readings);
    return {
      anomalous: manifest.window
        ? readingVerdicts(readings, results, WINDOW.strideMs)
        : results.map((r) => r.anomaly === true),
      events: anomalyEvents(results, manifest).events,
    };
  };
}

export async function main(): Promise<boolean> {
  const backend = await initTf();
  // ANOMALY_MODELS=window,t2 runs a subset while iterating (default: all three).
  const wanted = (process.env.ANOMALY_MODELS ?? 'rows,window,t2').split(',');
  // ANOMALY_DATA_SEED=10 draws other days of the same pumps (other noise and fault places).
  const shift = Number(process.env.ANOMALY_DATA_SEED ?? 0);
  const train = generatePumpCsv({ pumps: 6, minutes: 2880, seed: 1 + shift });
  const faulty = generatePumpCsv({
    pumps: 6,
    minutes: 1440,
    seed: 2 + shift,
    firstPump: 6,
    startMs: Date.UTC(2026, 10, 10),
    faults: { perPump: 2 },
  });
  const calm = generatePumpCsv({
    pumps: 6,
    minutes: 1440,
    seed: 3 + shift,
    firstPump: 6,
    startMs: Date.UTC(2026, 10, 11),
  });
  console.log(
    `anomaly: backend ${backend}; training pumps 1-6, 2 days of normal operation at 1 reading a minute; test pumps 7-12 (never seen): a day with ${faulty.faults.length} injected faults of 60 min, and a normal day; event rule ${RULE.k} of ${RULE.n}, closed by ${RULE.m} clear`,
  );
  const faultyReadings = parseCsvReadings(faulty.csv, 'faulty: ').rows;
  const calmReadings = parseCsvReadings(calm.csv, 'calm: ').rows;
  const trainReadings = parseCsvReadings(train.csv, 'train: ').rows;
  const candidates: { name: string; score: Scorer; note?: string }[] = [];
  const trained = async (name: string, config: TrainingConfigInput, window: boolean) => {
    const started = performance.now();
    // ANOMALY_MODEL=pca (or autoencoder) pins the model instead of the trainer's choice.
    const pinned = process.env.ANOMALY_MODEL;
    const parsed = TrainingConfigSchema.parse(pinned ? { ...config, anomalyModel: pinned } : config);
    const outcome = await (window ? trainWindowsFromCsv : trainFromCsv)(train.csv, parsed);
    const a = outcome.metrics.anomaly;
    candidates.push({
      name,
      score: await gatewayScorer(outcome),
      note: `${name}: ${outcome.notices.find((n) => n.startsWith('anomaly model:'))?.slice(15)}; threshold ${a?.threshold} (quantile ${a?.quantile.toFixed(5)}, ${a?.readingsPerDay?.toFixed(0)} results a day), trained in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    });
  };
  if (wanted.includes('rows'))
    await trained('edgeloop rows', { task: 'anomaly', time: 'ts', series: 'pump', eventRule: RULE }, false);
  if (wanted.includes('window'))
    await trained('edgeloop windows', { task: 'anomaly', window: WINDOW, eventRule: RULE }, true);
  if (wanted.includes('t2')) {
    const bare = hotelling(trainReadings);
    candidates.push({ name: 'Hotelling T²', score: async (readings) => bare(readings) });
  }
  const pumpDays = 12; // six pumps, a faulty day and a normal day each
  const rows: [string, ReturnType<typeof scores>][] = [];
  for (const c of candidates)
    rows.push([
      c.name,
      scores(
        faultyReadings,
        await c.score(faultyReadings),
        faulty.faults,
        await c.score(calmReadings),
        pumpDays,
      ),
    ]);
  console.log(
    [
      'model',
      'event recall',
      'false alarms / pump-day',
      'median delay (min)',
      'pointwise F1',
      'faults missed',
    ].join(' | '),
  );
  for (const [name, s] of rows)
    console.log(
      [
        name,
        s.recall.toFixed(2),
        s.falsePerDay.toFixed(2),
        s.delay.toFixed(0),
        s.f1.toFixed(3),
        s.kindsMissed.join(', ') || '-',
      ].join(' | '),
    );
  for (const c of candidates) if (c.note) console.log(c.note);
  const base = rows.find(([name]) => name === 'Hotelling T²')?.[1];
  const met = (s: ReturnType<typeof scores>) =>
    s.recall >= 0.9 && s.falsePerDay <= 1 && (base === undefined || s.f1 > base.f1);
  const ours = rows.filter(([name]) => name.startsWith('edgeloop'));
  for (const [name, s] of ours)
    console.log(
      `${name}: targets (recall >= 0.9, <= 1 false alarm per pump-day, F1 above the bare's): ${met(s) ? 'met' : 'NOT met'}`,
    );
  return ours.some(([, s]) => met(s));
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/bench\//, '/bench/')))
  await main();
