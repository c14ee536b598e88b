/**
 * Labelled event ranges (events.csv) for anomaly models: parsed with errors that say what,
 * where and how to fix; kept out of the training trigger; never trained on; matched against
 * the event rule's events for recall, precision and delay; and the gate's recall floor,
 * applied only when there are ranges.
 */
import { describe, expect, it } from 'vitest';
import { formatRegistry } from '../../infra/cli/commands/models.ts';
import { generatePumpCsv } from '../../shared/anomaly-dataset.ts';
import { InputError } from '../../shared/errors.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { datasetKeys } from '../../shared/topology.ts';
import { anomalyGateDecision } from '../../shared/training/gate.ts';
import {
  EventRanges,
  evaluateLabelled,
  matchEvents,
  parseEventsCsv,
} from '../../shared/training/labelled-events.ts';
import { trainFromCsv } from '../../shared/training/train.ts';

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 2);

describe('events.csv', () => {
  it('reads ISO and epoch-ms times, an optional kind, and skips blank lines', () => {
    const ranges = parseEventsCsv(
      `series,start,end,kind\npump-01,2026-11-02T01:00:00Z,2026-11-02T02:00:00Z,spike\n\npump-02,${T0},${T0 + 5 * MIN},\n`,
    );
    expect(ranges).toEqual([
      { series: 'pump-01', start: T0 + 60 * MIN, end: T0 + 120 * MIN, kind: 'spike' },
      { series: 'pump-02', start: T0, end: T0 + 5 * MIN },
    ]);
    // Columns in any order, without kind; epoch seconds for a model whose time unit is 's'.
    expect(parseEventsCsv('end,series,start\n20,a,10\n', 'e: ', 's')).toEqual([
      { series: 'a', start: 10_000, end: 20_000 },
    ]);
  });

  it.each([
    [
      'series,start,end,severity\np,1,2,high\n',
      /^e\.csv: unknown column 'severity': an events file has columns series,start,end and optionally kind$/,
    ],
    ['series,start\np,1\n', /^e\.csv: no 'end' column: an events file has columns series,start,end/],
    ['series,start,end\np,1,2\np,10,5\n', /^e\.csv: line 3: end 5 is before start 10: swap them$/],
    [
      'series,start,end\np,yesterday,2\n',
      /^e\.csv: line 2: start 'yesterday' is not a time: write ISO 8601 \(2026-11-03T10:00:00Z\) or epoch milliseconds/,
    ],
  ])('refuses %j with what, where and the fix', (text, message) => {
    expect(() => parseEventsCsv(text, 'e.csv: ')).toThrow(InputError);
    expect(() => parseEventsCsv(text, 'e.csv: ')).toThrow(message);
  });

  it('warns about series the dataset does not have instead of failing', () => {
    const ranges = new EventRanges(parseEventsCsv('series,start,end\npump-01,1,2\npump-99,1,2\n'));
    expect(ranges.unknownSeriesNotice(['pump-01', 'pump-02'])).toMatch(
      /^events\.csv: 1 labelled range\(s\) name series the dataset does not have \('pump-99'\): they are not scored/,
    );
    expect(ranges.unknownSeriesNotice(['pump-01', 'pump-99'])).toBeUndefined();
  });

  it('is no dataset: uploading it (or the config) beside the datasets starts no run', () => {
    expect(datasetKeys.events('pumps')).toBe('datasets/pumps/events.csv');
    expect(datasetKeys.kindOf(datasetKeys.events('pumps'))).toBeUndefined();
    expect(datasetKeys.modelOf(datasetKeys.events('pumps'))).toBeUndefined();
    expect(datasetKeys.kindOf(datasetKeys.config('pumps'))).toBeUndefined();
    // Only those two names: a dataset called like them elsewhere still trains.
    expect(datasetKeys.kindOf('datasets/pumps/my-events.csv')).toEqual({ model: 'pumps', kind: 'object' });
    expect(datasetKeys.kindOf('datasets/pumps/events.csv.gz')).toEqual({ model: 'pumps', kind: 'object' });
  });
});

describe('event recall, precision and delay', () => {
  const ranges = [
    { series: 'a', start: 100 * MIN, end: 160 * MIN },
    { series: 'a', start: 400 * MIN, end: 460 * MIN },
    { series: 'b', start: 100 * MIN, end: 160 * MIN },
    { series: 'b', start: 700 * MIN, end: 760 * MIN },
  ];

  it('finds a range by an overlapping event ending at most the slack after it, and times the first', () => {
    const events = [
      { series: 'a', start: 110 * MIN, end: 130 * MIN }, // range a1, 10 min late
      { series: 'a', start: 120 * MIN, end: 125 * MIN }, // a1 again: right, not first
      { series: 'a', start: 465 * MIN, end: 470 * MIN }, // a2, 5 min after its end: within a 10 min slack
      { series: 'b', start: 90 * MIN, end: 105 * MIN }, // b1, open before it: delay 0
      { series: 'b', start: 300 * MIN, end: 310 * MIN }, // false alarm
      { series: 'c', start: 300 * MIN, end: 310 * MIN }, // a series without ranges: not counted
    ];
    expect(matchEvents(ranges, events, 10 * MIN)).toEqual({
      ranges: 4,
      found: 3,
      events: 5,
      recall: 0.75,
      precision: 0.8,
      f1: 0.7742,
      medianDelayMs: 10 * MIN, // delays 10 min (a1), 65 min (a2: its event started after it), 0 (b1)
    });
    // Without slack the late event misses a2 and is a false alarm.
    expect(matchEvents(ranges, events, 0)).toMatchObject({ found: 2, recall: 0.5, precision: 0.6 });
    expect(matchEvents(ranges, [], 0)).toEqual({
      ranges: 4,
      found: 0,
      events: 0,
      recall: 0,
      precision: 0,
      f1: 0,
    });
  });

  it('runs the event rule over scored results in time order, judging by the threshold', () => {
    // One result a minute on series a: scores over 1 from minute 100 to 119.
    const times = Array.from({ length: 300 }, (_, i) => i * MIN);
    const scores = times.map((t) => (t >= 100 * MIN && t < 120 * MIN ? 5 : 0.1));
    const found = evaluateLabelled(
      { scores, series: times.map(() => 'a'), times },
      1,
      { k: 3, n: 5, m: 5 },
      [{ series: 'a', start: 98 * MIN, end: 125 * MIN }],
      0,
    );
    expect(found).toEqual({
      ranges: 1,
      found: 1,
      events: 1,
      recall: 1,
      precision: 1,
      f1: 1,
      medianDelayMs: 2 * MIN,
    });
  });
});

describe('the anomaly gate with labelled ranges', () => {
  const base = { falseAlarmRate: 0.001, quantile: 0.999, testRows: 1000, margin: 0.02 };

  it('rejects a candidate whose event recall is under gateMinEventRecall, with both figures', () => {
    const decision = anomalyGateDecision({
      ...base,
      labelled: { recall: 0.6, ranges: 20 },
      minEventRecall: 0.9,
    });
    expect(decision).toEqual({
      passed: false,
      reason:
        "below the config's floor: event recall 0.6000 on 20 labelled range(s) < gateMinEventRecall 0.9",
    });
    expect(
      anomalyGateDecision({ ...base, labelled: { recall: 0.95, ranges: 20 }, minEventRecall: 0.9 }),
    ).toEqual({
      passed: true,
      reason:
        'first version: alarms on 0.10% of held-out normal rows; event recall 0.9500 on 20 labelled range(s) >= gateMinEventRecall 0.9',
    });
  });

  it('does not apply the floor without labelled ranges, and says so', () => {
    expect(anomalyGateDecision({ ...base, minEventRecall: 0.9 })).toEqual({
      passed: true,
      reason:
        'first version: alarms on 0.10% of held-out normal rows; gateMinEventRecall 0.9 not applied: no labelled event ranges',
    });
    // Low recall without a floor is reported, not gated.
    expect(anomalyGateDecision({ ...base, labelled: { recall: 0.1, ranges: 20 } }).passed).toBe(true);
  });
});

describe('rows inside labelled ranges', () => {
  it('are never trained on: a huge stretch inside a range leaves the fit and the held-out rows alone', async () => {
    // Prepare: three pumps; pump-02's flow reads 1e6 for 100 minutes, labelled as a range.
    const { csv } = generatePumpCsv({ pumps: 3, minutes: 600, seed: 3 });
    const start = T0 + 200 * MIN;
    const end = T0 + 299 * MIN;
    const broken = csv.replace(/^(\d+),pump-02,([^,]+),/gm, (line, ts: string) =>
      Number(ts) >= start && Number(ts) <= end ? `${ts},pump-02,1000000,` : line,
    );
    const events = [{ series: 'pump-02', start, end, kind: 'sensor' }];
    const config = TrainingConfigSchema.parse({
      task: 'anomaly',
      time: 'ts',
      series: 'pump',
      epochs: 3,
      gateMinEventRecall: 0.5,
    });
    const flowOf = (outcome: Awaited<ReturnType<typeof trainFromCsv>>) =>
      outcome.preprocessing.features.find((f) => f.column === 'flow') as {
        mean: number;
        std: number;
        log1p?: true;
      };

    // Act
    const labelled = await trainFromCsv(broken, config, { events });
    const unlabelled = await trainFromCsv(broken, config);

    // Assess: 100 rows left out, said in a notice; the flow scaling is normal operation's.
    expect(labelled.notices).toContain(
      '100 reading(s) in or overlapping 1 labelled event range(s) (events.csv) left out of training and threshold calibration',
    );
    expect(flowOf(labelled).mean).toBeGreaterThan(30);
    expect(flowOf(labelled).mean).toBeLessThan(90);
    expect(flowOf(labelled).std).toBeLessThan(50);
    expect(flowOf(labelled)).not.toHaveProperty('log1p');
    // Trained on, the 1e6 readings bend the flow's scaling into a log.
    expect(flowOf(unlabelled)).toHaveProperty('log1p', true);
    // No held-out row (what the gate scores the release on) lies in the range.
    const inRange = (rows: Record<string, string>[]) =>
      rows.filter((r) => r.pump === 'pump-02' && Number(r.ts) >= start && Number(r.ts) <= end).length;
    expect(inRange(labelled.testSet.rows)).toBe(0);
    expect(inRange(unlabelled.testSet.rows)).toBeGreaterThan(0);
    // The stuck-at-1e6 stretch is an event of pump-02: found, and scored in the metrics.
    expect(labelled.metrics.anomaly?.labelled).toMatchObject({ ranges: 1, found: 1, recall: 1 });
    expect(unlabelled.metrics.anomaly?.labelled).toBeUndefined();
    expect(unlabelled.notices).toContain(
      'gateMinEventRecall 0.5 is not applied: there are no labelled event ranges (upload events.csv beside the dataset, or --events)',
    );
  });

  it('need the time column to be placed', async () => {
    const { csv } = generatePumpCsv({ pumps: 1, minutes: 60 });
    const config = TrainingConfigSchema.parse({ task: 'anomaly', epochs: 1 });
    await expect(trainFromCsv(csv, config, { events: [{ series: '', start: 0, end: 1 }] })).rejects.toThrow(
      /labelled event ranges \(events\.csv\) need the rows' time column: set "time" in the config \(or --time\)/,
    );
  });
});

describe('the registry table', () => {
  it('shows the labelled figures of an anomaly version in an EVENTS column', () => {
    const [header, row] = formatRegistry([
      {
        model: 'pumps',
        version: 2,
        status: 'rejected-by-gate',
        createdAt: '2026-12-07T10:00:00.000Z',
        updatedAt: '2026-12-07T10:00:00.000Z',
        datasetKey: 'datasets/pumps/day.csv',
        reason: 'below the floor',
        metrics: {
          anomaly: {
            threshold: 4.5,
            quantile: 0.959,
            falseAlarmRate: 0.026,
            labelled: {
              ranges: 20,
              found: 19,
              events: 21,
              recall: 0.95,
              precision: 0.9048,
              f1: 0.9268,
              medianDelayMs: 5 * MIN,
            },
          },
        },
      },
    ]);
    expect(header).toMatch(/\sEVENTS\s+REASON$/);
    expect(row).toMatch(/recall 0\.95 prec 0\.90 F1 0\.93 delay 5m\s+below the floor$/);
  });
});
