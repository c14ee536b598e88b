/**
 * A window anomaly model with labelled event ranges: the windows overlapping a range are
 * never trained on, and the candidate is scored against the ranges by the event rule over
 * the labelled pumps' windows in time order, the very events the gateway's replay finds.
 */
import { describe, expect, it } from 'vitest';
import { gatewayReplay } from '../../bench/support/gateway-replay.ts';
import { normalAndFaulty } from '../../shared/anomaly-dataset.ts';
import { TrainingConfigSchema } from '../../shared/schemas.ts';
import { trainWindowsFromCsv } from '../../shared/timeseries/train.ts';
import { matchEvents } from '../../shared/training/labelled-events.ts';

const WINDOW = { time: 'ts', series: 'pump', sizeMs: 30 * 60_000, strideMs: 5 * 60_000, frequencyHz: 1 / 60 };
const RULE = { k: 3, n: 5, m: 5 };

describe('a window anomaly model with labelled event ranges', () => {
  it('finds the injected faults (recall >= 0.9) and reports what the gateway replay finds', async () => {
    // Prepare: six pumps' normal day and four pumps' day with five faults each, one dataset;
    // events.csv lists the faults.
    const { normal, faulty } = normalAndFaulty(
      { pumps: 6, minutes: 1440 },
      { pumps: 4, minutes: 1440, firstPump: 6, faults: { perPump: 5, minutes: 60 } },
    );
    const csv = normal.csv + faulty.csv.slice(faulty.csv.indexOf('\n') + 1);
    const events = faulty.faults.map((f) => ({ series: f.series, start: f.start, end: f.end, kind: f.kind }));
    const config = TrainingConfigSchema.parse({
      task: 'anomaly',
      window: WINDOW,
      eventRule: RULE,
      epochs: 30,
    });

    // Act
    const outcome = await trainWindowsFromCsv(csv, config, { events });
    const unlabelled = await trainWindowsFromCsv(csv, config);

    // Assess: every window overlapping a fault is left out of the train, validation and test windows.
    const counts = (o: typeof outcome) => o.window?.manifest.windows ?? { train: 0, validation: 0, test: 0 };
    const total = (c: ReturnType<typeof counts>) => c.train + c.validation + c.test;
    const excluded = total(counts(unlabelled)) - total(counts(outcome));
    // A 60-minute fault touches the windows ending in it or up to 29 minutes after: 17 or 18.
    expect(excluded).toBeGreaterThanOrEqual(20 * 17);
    expect(excluded).toBeLessThanOrEqual(20 * 18);
    expect(outcome.notices).toContain(
      `${excluded} window(s) in or overlapping 20 labelled event range(s) (events.csv) left out of training and threshold calibration`,
    );
    // The figures: the window model finds the faults of all five kinds.
    const labelled = outcome.metrics.anomaly?.labelled;
    expect(labelled?.ranges).toBe(20);
    expect(labelled?.recall).toBeGreaterThanOrEqual(0.9);
    expect(labelled?.precision).toBeGreaterThan(0.5);
    expect(labelled?.medianDelayMs).toBeLessThanOrEqual(30 * 60_000);
    expect(outcome.notices.some((n) => n.startsWith('labelled events: event recall '))).toBe(true);
    // Each candidate the trainer weighed carries its separation of the labelled events.
    const candidates = outcome.metrics.anomaly?.candidates ?? [];
    expect(candidates.map((c) => c.model)).toEqual(['pca', 'autoencoder']);
    for (const c of candidates) {
      expect(c.eventRecall).toBeGreaterThanOrEqual(0);
      expect(c.scoreRatio).toBeGreaterThan(1);
    }
    // The gate's held-out readings skip the ranges as the candidate's test windows do.
    const inFault = outcome.testSet.rows.filter((row) =>
      events.some((e) => e.series === row.pump && Number(row.ts) >= e.start && Number(row.ts) <= e.end),
    );
    expect(inFault).toEqual([]);

    // The trainer's figures are the gateway's: replaying the faulty pumps through the device's
    // own scoring and event rule gives the same events against the ranges.
    const { manifest, events: found } = await gatewayReplay(outcome, faulty.csv);
    const window = manifest.window?.spec as NonNullable<typeof manifest.window>['spec'];
    const slackMs =
      ((window.samples - 1) * 1000) / window.frequencyHz +
      (RULE.n * window.stride * 1000) / window.frequencyHz;
    expect(matchEvents(events, found, slackMs)).toEqual(labelled);
  });
});
