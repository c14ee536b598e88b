/**
 * Builds dashboard snapshots for tests: a small, deterministic fleet story (v1 released,
 * v2 rejected by the gate, v3 released and rolling out), computed from generated results so
 * the numbers are consistent with each other. Nothing here is baked into the page.
 */
import type { DashboardSnapshot, MinutePoint, VersionSeries } from '../../infra/local/dashboard/snapshot.ts';
import { seededRandom } from '../../shared/training/random.ts';

export interface SnapshotOptions {
  now?: Date;
  /** Minutes of data per served version. */
  minutes?: number;
  /** Aggregator errors recorded in the window. */
  errorCount?: number;
  seed?: number;
}

const MODEL = 'vibration';
const CLASSES = ['bearing-wear', 'imbalance', 'misalignment', 'normal'];

/** The index whose cumulative share first reaches u. */
function pickIndex(shares: number[], u: number): number {
  let cumulative = 0;
  for (const [index, share] of shares.entries()) {
    cumulative += share;
    if (u <= cumulative) return index;
  }
  return shares.length - 1;
}

function quantile(sorted: number[], q: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index] ?? 0;
}

/** One version's minutes, class mix and confidence histogram from simulated results. */
function versionSeries(
  version: number,
  startMinute: number,
  minutes: number,
  quality: { accuracy: number; confidence: number; latencyMs: number; mix: number[] },
  rand: () => number,
): VersionSeries {
  const classMix: Record<string, number> = Object.fromEntries(CLASSES.map((c) => [c, 0]));
  const bins = Array.from({ length: 10 }, (_, i) => ({ from: i / 10, to: (i + 1) / 10, count: 0 }));
  let confidenceSum = 0;
  let results = 0;
  const points: MinutePoint[] = [];
  for (let m = 0; m < minutes; m++) {
    const n = 80 + Math.floor(rand() * 60);
    const latencies: number[] = [];
    let low = 0;
    let correct = 0;
    let confSum = 0;
    const minuteMix = CLASSES.map(() => 0);
    for (let i = 0; i < n; i++) {
      const k = pickIndex(quality.mix, rand());
      minuteMix[k] = (minuteMix[k] ?? 0) + 1;
      const label = CLASSES[k] ?? 'normal';
      classMix[label] = (classMix[label] ?? 0) + 1;
      const confidence = Math.min(0.999, Math.max(0.3, quality.confidence + (rand() - 0.5) * 0.5));
      const bin = bins[Math.min(9, Math.floor(confidence * 10))];
      if (bin) bin.count++;
      confSum += confidence;
      if (confidence < 0.6) low++;
      if (rand() < quality.accuracy) correct++;
      latencies.push(quality.latencyMs * (0.6 + rand() * 0.8) + (rand() < 0.02 ? quality.latencyMs * 3 : 0));
    }
    latencies.sort((a, b) => a - b);
    const psi = CLASSES.reduce((sum, _, k) => {
      const live = Math.max(1e-4, (minuteMix[k] ?? 0) / n);
      const train = 0.25;
      return sum + (live - train) * Math.log(live / train);
    }, 0);
    confidenceSum += confSum;
    results += n;
    points.push({
      minute: startMinute + m * 60_000,
      inferences: n,
      lowConfidenceRate: low / n,
      confidenceMean: confSum / n,
      latencyP50Ms: quantile(latencies, 0.5),
      latencyP99Ms: quantile(latencies, 0.99),
      liveAccuracy: correct / n,
      drift: psi,
    });
  }
  return {
    model: MODEL,
    version,
    minutes: points,
    classMix,
    confidence: { mean: results > 0 ? confidenceSum / results : null, histogram: bins },
  };
}

/** Minutes of a version that answers no classes: no confidences, `extra` per minute. */
function minutesWithout(
  startMinute: number,
  minutes: number,
  rand: () => number,
  extra: (m: number) => Partial<MinutePoint>,
): MinutePoint[] {
  return Array.from({ length: minutes }, (_, m) => {
    const n = 40 + Math.floor(rand() * 20);
    const latencies = Array.from({ length: n }, () => 1 + rand()).sort((a, b) => a - b);
    return {
      minute: startMinute + m * 60_000,
      inferences: n,
      lowConfidenceRate: null,
      confidenceMean: null,
      latencyP50Ms: quantile(latencies, 0.5),
      latencyP99Ms: quantile(latencies, 0.99),
      liveAccuracy: null,
      drift: null,
      ...extra(m),
    };
  });
}

/**
 * A regression model's version beside the classifier (model `yield`, a line's yield in %): results
 * carry values, not classes, so the class and confidence views leave it out.
 */
function regressionSeries(startMinute: number, minutes: number, rand: () => number): VersionSeries {
  return {
    model: 'yield',
    version: 1,
    task: 'regression',
    minutes: minutesWithout(startMinute, minutes, rand, () => ({
      drift: 0.02 + rand() * 0.05,
      predictionMean: 38 + rand() * 4,
      liveRmse: 1.1 + rand() * 0.3,
    })),
    classMix: {},
    confidence: { mean: null, histogram: [] },
  };
}

/**
 * An anomaly model's version (model `water-pumps`): results are scored, not classified, so the
 * class, confidence and live accuracy views leave it out; the anomaly view shows its rate.
 */
function anomalySeries(startMinute: number, minutes: number, rand: () => number): VersionSeries {
  return {
    model: 'water-pumps',
    version: 1,
    task: 'anomaly',
    minutes: minutesWithout(startMinute, minutes, rand, (m) => ({
      anomalyRate: m >= minutes - 4 ? 0.3 + rand() * 0.2 : rand() * 0.02,
    })),
    classMix: { anomaly: 40, normal: 680 },
    confidence: { mean: null, histogram: [] },
  };
}

export function buildSnapshot(options: SnapshotOptions = {}): DashboardSnapshot {
  const now = options.now ?? new Date('2025-06-01T12:00:30Z');
  const minutes = options.minutes ?? 12;
  const errorCount = options.errorCount ?? 5;
  const rand = seededRandom(options.seed ?? 7);
  const at = (secondsAgo: number) => new Date(now.getTime() - secondsAgo * 1000).toISOString();
  const firstMinute = Math.floor(now.getTime() / 60_000) * 60_000 - (minutes - 1) * 60_000;

  const v1 = versionSeries(
    1,
    firstMinute,
    minutes,
    { accuracy: 0.86, confidence: 0.78, latencyMs: 2.2, mix: [0.2, 0.2, 0.2, 0.4] },
    rand,
  );
  const v3Start = Math.floor(minutes / 2);
  const v3 = versionSeries(
    3,
    firstMinute + v3Start * 60_000,
    minutes - v3Start,
    { accuracy: 0.93, confidence: 0.83, latencyMs: 1.6, mix: [0.25, 0.25, 0.25, 0.25] },
    rand,
  );

  const reasons = [
    'payload is not valid JSON: Unexpected end of JSON input',
    'results.3.confidence: Invalid input: expected number, received string',
    'payload is null: expected a result batch object',
    'results.0.latencyMs: number must be finite (got Infinity)',
    'payload is not UTF-8 JSON (binary data, 64 bytes)',
  ];
  const latest = Array.from({ length: Math.min(errorCount, 8) }, (_, i) => ({
    at: at(20 + i * 37),
    reason: reasons[i % reasons.length] ?? 'malformed',
    topic: `edgeloop/things/gw-0${(i % 3) + 1}/results`,
    thing: `gw-0${(i % 3) + 1}`,
  }));

  return {
    generatedAt: now.toISOString(),
    training: {
      runs: [
        { model: MODEL, version: 1, status: 'released', accuracy: 0.874, createdAt: at(3600) },
        {
          model: MODEL,
          version: 2,
          status: 'rejected-by-gate',
          accuracy: 0.812,
          baselineAccuracy: 0.874,
          reason: 'accuracy 81.2% trails the release (87.4%) by more than the 2% gate margin',
          createdAt: at(2400),
        },
        {
          model: MODEL,
          version: 3,
          status: 'released',
          accuracy: 0.931,
          baselineAccuracy: 0.874,
          notices: [
            "column 'temperature_c' is numeric: 3 of 1500 values (0.2%) are not numbers and count as missing (e.g. 'hot' (data row 8))",
          ],
          createdAt: at(minutes * 30),
        },
      ],
    },
    rollout: {
      fleet: [
        {
          thing: 'gw-01',
          model: MODEL,
          version: 3,
          online: true,
          state: 'serving',
          outboxDepth: 0,
          dropped: 0,
          lastSeen: at(3),
        },
        {
          thing: 'gw-02',
          model: MODEL,
          version: 3,
          online: true,
          state: 'serving',
          outboxDepth: 12,
          dropped: 0,
          lastSeen: at(5),
        },
        {
          thing: 'gw-03',
          model: MODEL,
          version: 3,
          online: true,
          state: 'serving',
          outboxDepth: 3,
          dropped: 0,
          lastSeen: at(2),
        },
        {
          thing: 'gw-04',
          model: MODEL,
          version: 1,
          online: false,
          state: 'error',
          outboxDepth: 240,
          dropped: 17,
          lastSeen: at(420),
          lastError: { step: 'verify', reason: 'manifest signature does not verify with the fleet key' },
        },
      ],
    },
    versions: [
      v1,
      v3,
      regressionSeries(firstMinute, minutes, rand),
      anomalySeries(firstMinute, minutes, rand),
    ],
    events: [
      {
        model: 'water-pumps',
        version: 1,
        thing: 'gw-02',
        series: 'pump-7',
        state: 'open',
        start: at(230),
        end: at(20),
        peakScore: 41.2,
        threshold: 3.1,
        channels: [
          { name: 'pressure', share: 0.71 },
          { name: 'flow', share: 0.2 },
        ],
      },
      {
        model: 'water-pumps',
        version: 1,
        thing: 'gw-01',
        series: 'pump-3',
        state: 'closed',
        start: at(600),
        end: at(480),
        peakScore: 9.5,
        threshold: 3.1,
        channels: [{ name: 'vibration', share: 0.9 }],
      },
    ],
    errors: { count: errorCount, latest },
  };
}
