/**
 * `edgeloop score`: a backtest with the gateway's own code. A file's readings go through the
 * replay source a gateway runs (the reading check, windowing for a windowed model, the model,
 * result encoding) into an outbox in a temporary directory, and the results are read back in
 * the order a gateway would send them, so what `score` prints is what a gateway would have
 * sent for the same readings. Refused readings are counted by reason, as the gateway counts them.
 *
 * The readings are held in memory, as the replay source holds its file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AnomalyEvent, EventTracker, eventInputOf } from '../shared/anomaly.ts';
import type { Reading } from '../shared/dataset/readings.ts';
import type { InferenceResult, Manifest, RefusalReason } from '../shared/schemas.ts';
import { Engine } from './model/engine.ts';
import type { LoadedModel } from './model/model.ts';
import { Outbox } from './results/outbox.ts';
import { ResultStream } from './results/result-writer.ts';
import { runCsvReplay } from './sources/sources.ts';
import { runWindowReplay } from './sources/window-sources.ts';

export interface ScoreOutcome {
  results: InferenceResult[];
  refused: Partial<Record<RefusalReason, number>>;
  readings: number;
}

/** The thing name score's result ids carry (`score:<position>`, as a gateway's `<thing>:<position>`). */
export const SCORE_THING = 'score';

export async function scoreReadings(model: LoadedModel, readings: readonly Reading[]): Promise<ScoreOutcome> {
  const dir = await mkdtemp(join(tmpdir(), 'edgeloop-score-'));
  const engine = new Engine();
  engine.setModel(model);
  const refused: ScoreOutcome['refused'] = {};
  try {
    const outbox = await Outbox.open(join(dir, 'outbox'));
    // A backtest's outbox is read back and thrown away: no journal for its open batches.
    const batcher = new ResultStream(outbox, {
      thing: SCORE_THING,
      model: model.manifest.model,
      batch: { durableWithinMs: 0 },
    });
    const context = {
      thing: SCORE_THING,
      engine,
      batcher,
      stopped: () => false,
      refuse: (refusal: { reason: RefusalReason }) => {
        refused[refusal.reason] = (refused[refusal.reason] ?? 0) + 1;
      },
    };
    const spec = { limit: readings.length };
    if (model.manifest.window) await runWindowReplay(readings, spec, 0, context);
    else
      await runCsvReplay(readings, spec, 0, {
        ...context,
        labelColumn: () => model.manifest.preprocessing.label,
      });
    await batcher.close();
    const stored = await Outbox.open(join(dir, 'outbox'));
    const results: InferenceResult[] = [];
    for (let batch = stored.take(); batch; batch = stored.take())
      results.push(...(JSON.parse((await stored.readResults(batch)).toString()) as InferenceResult[]));
    return { results, refused, readings: readings.length };
  } finally {
    engine.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * An anomaly model's events over scored results, by the model's event rule, as a gateway
 * finds them (the same EventTracker over the same inputs, shared/anomaly.ts eventInputOf):
 * each result's time and series, the id of the event it falls in, and the events found
 * (those still open at the end included).
 */
export function anomalyEvents(
  results: readonly InferenceResult[],
  manifest: Manifest,
): { times: number[]; series: string[]; eventOf: (string | undefined)[]; events: AnomalyEvent[] } {
  const rule = manifest.anomaly?.eventRule;
  if (!rule) throw new Error(`model v${manifest.version} is not an anomaly model: it has no event rule`);
  const tracker = new EventTracker(rule);
  const events: AnomalyEvent[] = [];
  const times: number[] = [];
  const seriesOf: string[] = [];
  const eventOf: (string | undefined)[] = [];
  for (const result of results) {
    const input = eventInputOf(result);
    const pushed = tracker.push(input.series, input.time, input);
    if (pushed.closed) events.push(pushed.closed);
    times.push(input.time);
    seriesOf.push(input.series);
    eventOf.push(pushed.event);
  }
  events.push(...tracker.flush());
  return { times, series: seriesOf, eventOf, events };
}
