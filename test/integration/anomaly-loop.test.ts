/**
 * The anomaly loop through the real local servers: pumps' normal days are uploaded with
 * `"task": "anomaly"` on 30-minute windows and no labels; the training handler trains, gates
 * and releases; the gateways replay a day of other pumps, into which faults were injected; each gateway's event
 * rule opens and closes events, which reach the events store over the broker and the IoT
 * rule. `edgeloop events` lists them, `edgeloop stats` shows the anomaly rate, and `edgeloop
 * score` finds the same events in the same file.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bench/support/cli.ts';
import type { EventItem } from '../../functions/events/record.ts';
import { type DemoRun, PUMPS_DEMO, runDemo } from '../../infra/local/demo.ts';
import { generatePumpCsv } from '../../shared/anomaly-dataset.ts';
import { WHOLE_LOOP_TEST_MS, WHOLE_LOOP_WAIT_MS } from './whole-loop.ts';

let run: DemoRun | undefined;
afterAll(async () => run?.stop());

describe('the anomaly loop on the local stack', { timeout: WHOLE_LOOP_TEST_MS }, () => {
  it('trains on normal data, and the events gateways find in a faulty day are stored, listed and equal to score', async () => {
    // Act
    run = await runDemo({ devices: 2, model: 'pumps', task: 'anomaly', timeoutMs: WHOLE_LOOP_WAIT_MS });
    const { summary } = run;
    const dataDir = summary.dataDir;
    const listed = await runCli([
      'events',
      '--model',
      'pumps',
      '--since',
      '90d',
      '--json',
      '--data-dir',
      dataDir,
    ]);
    const stats = await runCli(['stats', '--model', 'pumps', '--since', '1h', '--data-dir', dataDir]);
    const file = join(dataDir, '..', 'pumps-replayed.csv');
    const replay = generatePumpCsv(PUMPS_DEMO.replay);
    await writeFile(file, replay.csv);
    const scored = await runCli(['score', '--model', 'pumps', file, '--jsonl', '--data-dir', dataDir]);

    // Assess: released, every result counted, events stored for both gateways.
    expect(summary.version).toBe(1);
    expect(summary.results.aggregated).toBe(summary.results.published);
    expect(listed.code).toBe(0);
    const events = (JSON.parse(listed.stdout) as { events: EventItem[] }).events;
    expect(events.length).toBe(summary.anomaly?.events);
    expect(events.length).toBeGreaterThan(0);

    // Every injected fault is inside an event of its pump, on each gateway (the window model
    // finds them all on the benchmark's pumps too; bench/anomaly.ts).
    for (const thing of ['gw-1', 'gw-2'])
      for (const fault of replay.faults)
        expect(
          events.some(
            (e) =>
              e.thing === thing &&
              e.series === fault.series &&
              e.start <= fault.end + 30 * 60_000 &&
              e.end >= fault.start,
          ),
          `${thing} finds the ${fault.kind} fault of ${fault.series}`,
        ).toBe(true);

    // Score runs the gateway's code over the same file: the same events, per gateway.
    expect(scored.code).toBe(0);
    const lines = scored.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { series: string; time: number; event?: string });
    const scoreEvents = new Map<string, { series: string; start: number; end: number }>();
    for (const line of lines) {
      if (!line.event) continue;
      const event = scoreEvents.get(line.event) ?? { series: line.series, start: line.time, end: line.time };
      event.end = line.time;
      scoreEvents.set(line.event, event);
    }
    for (const thing of ['gw-1', 'gw-2']) {
      const stored = events
        .filter((e) => e.thing === thing)
        .map((e) => e.eventId)
        .sort();
      expect(stored).toEqual([...scoreEvents.keys()].sort());
    }

    // The anomaly view of stats: a rate, not a class mix.
    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(
      new RegExp(
        `anomaly rate {2}[\\d.]+% of results over the threshold \\(\\d+ of ${summary.results.published}\\)`,
      ),
    );
    expect(stats.stdout).toMatch(
      /score drift {3}PSI [\d.]+ \((stable|moderate|significant)\) against held-out normal scores/,
    );
    expect(stats.stdout).not.toMatch(/class mix/);
  });
});
