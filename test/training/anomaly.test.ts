/**
 * Anomaly models: trained on normal operation without labels, the time column never a
 * feature, the threshold at the false-alarm budget, and the gateway's own replay finding the
 * injected faults as events that name the channel that moved.
 */
import { describe, expect, it } from 'vitest';
import { gatewayReplay } from '../../bench/support/gateway-replay.ts';
import { formatRegistry } from '../../infra/cli/commands/models.ts';
import { EventTracker } from '../../shared/anomaly.ts';
import { generatePumpCsv, type InjectedFault, normalAndFaulty } from '../../shared/anomaly-dataset.ts';
import { parseDataset } from '../../shared/dataset.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { alarmQuantile, thresholdAt } from '../../shared/training/anomaly.ts';
import { anomalyGateDecision } from '../../shared/training/gate.ts';
import { seededRandom } from '../../shared/training/random.ts';
import { trainFromCsv } from '../../shared/training/train.ts';

const config = (extra: Record<string, unknown> = {}) =>
  TrainingConfigSchema.parse({
    task: 'anomaly',
    time: 'ts',
    series: 'pump',
    epochs: 60,
    ...extra,
  });

describe('anomaly models', () => {
  it('need no label, never train on the time column, and refuse a label', () => {
    const { csv } = generatePumpCsv({ pumps: 1, minutes: 100 });
    const profiled = parseDataset(csv, { task: 'anomaly', time: 'ts' });
    expect(profiled.labels).toEqual([]);
    expect(profiled.features).not.toContain('ts');
    expect(profiled.features).toContain('flow');
    expect(() => parseDataset(csv, { task: 'anomaly', label: 'pump' })).toThrow(
      /an anomaly model trains on normal operation without labels, but "label" names 'pump'/,
    );
    expect(() => parseDataset(csv, { task: 'anomaly', time: 'when' })).toThrow(
      /time column 'when' is not in the header/,
    );
    const windowed = (window: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
      TrainingConfigSchema.safeParse({
        task: 'anomaly',
        window: { time: 'ts', sizeMs: 1000, strideMs: 500, ...window },
        ...extra,
      });
    expect(windowed({}).success).toBe(true);
    expect(windowed({ features: 'raw' }).success).toBe(true);
    expect(windowed({}, { time: 'ts' }).error?.issues[0]?.message).toMatch(
      /name the time and series columns in "window"/,
    );
  });

  it('sets the threshold at the budget: 1 false alarm a day at 1,440 readings a day is the 0.99931 quantile', () => {
    expect(alarmQuantile({ falseAlarmsPerDay: 1 }, 1440).quantile).toBeCloseTo(1 - 1 / 1440, 9);
    expect(alarmQuantile({ falseAlarmsPerDay: 1, quantile: 0.99 }, 1440)).toEqual({
      quantile: 0.99,
      from: 'config',
    });
    // The exponential tail: for exponential scores the threshold is the true quantile.
    const random = seededRandom(2);
    const scores = Array.from({ length: 20_000 }, () => -Math.log(1 - random()));
    expect(thresholdAt(scores, 0.999)).toBeCloseTo(-Math.log(0.001), 0);
  });

  it("finds faults injected into another day of the pumps' operation as events naming the channel that moved", async () => {
    // Prepare: four pumps, one day of normal operation; the next day of the same pumps, faulty.
    const { normal, faulty } = normalAndFaulty(
      { pumps: 4, minutes: 1440 },
      { pumps: 4, minutes: 1440, startMs: Date.UTC(2026, 10, 3), faults: { perPump: 1, minutes: 60 } },
    );

    // Act
    const outcome = await trainFromCsv(normal.csv, config({ epochs: 40 }));
    const { manifest, failure, readings, results, events } = await gatewayReplay(outcome, faulty.csv);

    // Assess: the threshold came from the budget at the data's rate per pump, the held-out
    // normal rows alarm about as often as it allows, and probation holds.
    expect(failure).toBeUndefined();
    const metrics = outcome.metrics.anomaly;
    expect(metrics?.readingsPerDay).toBeCloseTo(1440, 0);
    // One false alarm a day, an alarm being 3 of 5 results over: p = (1 / (1440 * 10))^(1/3).
    expect(metrics?.quantile).toBeCloseTo(1 - (1 / ((metrics?.readingsPerDay ?? 1) * 10)) ** (1 / 3), 6);
    expect(metrics?.falseAlarmRate).toBeLessThanOrEqual(3 * (1 - (metrics?.quantile ?? 1)));
    expect(manifest.anomaly).toMatchObject({ time: 'ts', series: 'pump' });
    expect(results).toHaveLength(readings.length);
    expect(results[0]).toMatchObject({ threshold: manifest.anomaly?.threshold });
    // Events by pump; a fault is found when an event of its pump overlaps it.
    const overlaps = (e: { series: string; start: number; end: number }, f: InjectedFault) =>
      e.series === f.series && e.start <= f.end + 10 * 60_000 && e.end >= f.start;
    const missed = faulty.faults.filter((f) => !events.some((e) => overlaps(e, f)));
    const falseEvents = events.filter((e) => !faulty.faults.some((f) => overlaps(e, f)));
    // The sharp faults are found. A slow drift and a stuck sensor that stays near the day's
    // demand are not, by a model that scores each reading alone: windows find them
    // (test/timeseries/anomaly-windows.test.ts, bench/anomaly.ts).
    expect(faulty.faults.map((f) => f.kind)).toEqual(['spike', 'drift', 'stuck', 'noise']);
    expect(missed.map((f) => f.kind).filter((kind) => kind !== 'drift' && kind !== 'stuck')).toEqual([]);
    expect(falseEvents.length).toBeLessThanOrEqual(4); // one a pump-day
    // Each found event names the channel its fault moved first (the spike: current).
    const spike = faulty.faults.find((f) => f.kind === 'spike') as InjectedFault;
    expect(events.find((e) => overlaps(e, spike))?.channels[0]?.name).toBe('current');
  });

  it('opens an event at k of n anomalous results and closes it after m clear ones', () => {
    const tracker = new EventTracker({ k: 2, n: 3, m: 2 });
    const push = (t: number, anomaly: boolean) =>
      tracker.push('p', t, {
        anomaly,
        score: anomaly ? 5 : 0.1,
        channels: anomaly ? [{ name: 'temp', share: 1 }] : [],
      });
    expect(push(1, true).event).toBeUndefined();
    expect(push(2, false).event).toBeUndefined();
    expect(push(3, true).event).toBe('p@1');
    expect(push(4, false).event).toBe('p@1');
    const closed = push(5, false).closed;
    expect(closed).toMatchObject({
      id: 'p@1',
      start: 1,
      end: 3,
      results: 1,
      channels: [{ name: 'temp', share: 1 }],
    });
    expect(tracker.flush()).toEqual([]);
  });

  it('gates by the false-alarm rate on held-out normal rows, against the quantile and the release', () => {
    expect(
      anomalyGateDecision({ falseAlarmRate: 0.002, quantile: 0.999, testRows: 1000, margin: 0.02 }).passed,
    ).toBe(true);
    expect(
      anomalyGateDecision({ falseAlarmRate: 0.05, quantile: 0.999, testRows: 1000, margin: 0.02 }).reason,
    ).toBe('alarms on 5.00% of held-out normal rows, over the 0.30% its threshold allows (quantile 0.999)');
    expect(
      anomalyGateDecision({
        falseAlarmRate: 0.003,
        quantile: 0.999,
        testRows: 1000,
        baselineRate: 0,
        margin: 0.001,
      }).passed,
    ).toBe(false);
  });
});

describe('the registry table', () => {
  it("shows an anomaly version's share of held-out normal results over its threshold", () => {
    const [header, row] = formatRegistry([
      {
        model: 'pumps',
        version: 1,
        status: 'released',
        createdAt: '2026-12-07T10:00:00.000Z',
        updatedAt: '2026-12-07T10:00:00.000Z',
        datasetKey: 'datasets/pumps/day.csv',
        metrics: { anomaly: { threshold: 4.5, quantile: 0.959, falseAlarmRate: 0.026 }, testRows: 600 },
      },
    ]);
    expect(header).toMatch(/^MODEL\s+VERSION\s+STATUS\s+SCORE\s+BASELINE/);
    expect(row).toMatch(/^pumps\s+v1\s+released\s+over 2\.6%/);
  });
});
