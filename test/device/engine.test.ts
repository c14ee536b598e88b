/**
 * The micro-batcher behind POST /infer and stdin: a lone reading is predicted in the turn it
 * arrived (no timer waits for a batch that never fills), and readings arriving together still
 * share one predict.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Engine, type Inferred } from '../../device/model/engine.ts';
import { type LoadedModel, loadModelFromBytes } from '../../device/model/model.ts';
import { sha256Hex } from '../../shared/manifest.ts';
import type { Manifest } from '../../shared/schemas.ts';
import { modelFiles } from '../../shared/topology.ts';
import { type Artifacts, PREPROCESSING, sensorRows, trainTinyModel } from './helpers.ts';

let artifacts: Artifacts;

beforeAll(async () => {
  artifacts = await trainTinyModel();
});

afterEach(() => {
  vi.useRealTimers();
});

async function servingEngine(maxBatch?: number): Promise<{ engine: Engine; batches: number[] }> {
  const manifest: Manifest = {
    schemaVersion: 1,
    model: 'tiny',
    version: 3,
    createdAt: new Date().toISOString(),
    files: [
      { name: modelFiles.topology, sha256: sha256Hex(artifacts.modelJson), size: artifacts.modelJson.length },
      { name: modelFiles.weights, sha256: sha256Hex(artifacts.weights), size: artifacts.weights.length },
    ],
    preprocessing: PREPROCESSING,
    metrics: { accuracy: 0.9 },
    classDistribution: {},
    golden: { ...artifacts.golden, tolerance: 1e-3 },
    lowConfidence: 0.6,
    lineage: {
      datasetKey: 'datasets/tiny/d.csv',
      datasetSha256: sha256Hex('d'),
      rows: 200,
      backend: 'wasm',
      seed: 1,
    },
  };
  const model: LoadedModel = await loadModelFromBytes(artifacts.modelJson, artifacts.weights, manifest);
  const batches: number[] = [];
  const predictRows = model.predictRows.bind(model);
  model.predictRows = (rows) => {
    batches.push(rows.length);
    return predictRows(rows);
  };
  const engine = new Engine(maxBatch === undefined ? {} : { maxBatch });
  engine.setModel(model);
  return { engine, batches };
}

/** Resolves after `n` turns of the event loop, with no timer involved. */
function turns(n: number): Promise<'still waiting'> {
  return new Promise((resolve) => {
    let left = n;
    const step = () => (--left <= 0 ? resolve('still waiting') : setImmediate(step));
    setImmediate(step);
  });
}

describe('Engine.submit (single readings)', () => {
  it('answers a lone reading within a few event-loop turns, with no timer firing', async () => {
    // Prepare: timers are frozen, so anything waiting on one never answers.
    const { engine, batches } = await servingEngine();
    vi.useFakeTimers({ toFake: ['setTimeout', 'setInterval'] });
    const [row] = sensorRows(1);

    // Act
    const answer = await Promise.race([engine.submit(row ?? {}), turns(5)]);

    // Assess
    expect(answer).toMatchObject({ version: 3, label: expect.stringMatching(/^(hi|lo)$/) });
    expect(batches).toEqual([1]);
    engine.dispose();
  });

  it('runs one predict for the readings that arrive in the same turn', async () => {
    // Prepare
    const { engine, batches } = await servingEngine();
    const rows = sensorRows(5);

    // Act
    const answers = await Promise.all(rows.map((row) => engine.submit(row)));

    // Assess
    expect(batches).toEqual([5]);
    expect(answers).toHaveLength(5);
    expect(answers.every((answer) => answer.version === 3)).toBe(true);
    engine.dispose();
  });

  it('cuts a full batch at maxBatch and predicts the rest in the same turn', async () => {
    // Prepare
    const { engine, batches } = await servingEngine(2);

    // Act
    await Promise.all(sensorRows(5).map((row) => engine.submit(row)));

    // Assess
    expect(batches).toEqual([2, 2, 1]);
    engine.dispose();
  });

  it('gives the same labels one at a time as in a batch', async () => {
    // Prepare
    const { engine } = await servingEngine();
    const rows = sensorRows(8, 21);

    // Act
    const together = await Promise.all(rows.map((row) => engine.submit(row)));
    const alone: string[] = [];
    for (const row of rows) alone.push(labelOf(await engine.submit(row)));

    // Assess
    expect(alone).toEqual(together.map(labelOf));
    engine.dispose();
  });
});

function labelOf(answer: Inferred): string {
  if (answer.value !== undefined || answer.score !== undefined)
    throw new Error('a classifier answered a value or a score');
  return answer.label;
}
