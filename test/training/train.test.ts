import { describe, expect, it } from 'vitest';
import { generateDemoDataset } from '../../shared/demo-dataset.ts';
import {
  generateSigningKeyPair,
  pemSigner,
  sha256Hex,
  signManifest,
  verifyManifestSignature,
} from '../../shared/manifest.ts';
import { transformRows } from '../../shared/preprocess.ts';
import { ManifestSchema, TrainingConfigSchema } from '../../shared/schemas.ts';
import { buildManifest, manifestBytes } from '../../shared/training/artifacts.ts';
import { loadModelFromArtifacts, predictProbabilities } from '../../shared/training/model.ts';
import { trainFromCsv } from '../../shared/training/train.ts';
import { AWKWARD, fixture } from './fixtures.ts';

const demo = generateDemoDataset({ rows: 1500 });

describe('training on the demo dataset', () => {
  it('reaches a real held-out accuracy and reports every metric', async () => {
    // Act
    const outcome = await trainFromCsv(demo, TrainingConfigSchema.parse({ epochs: 40 }));
    // Assess
    expect(outcome.metrics.accuracy).toBeGreaterThan(0.88);
    expect(outcome.metrics.macroF1).toBeGreaterThan(0.82);
    expect(outcome.metrics.testRows).toBe(225);
    expect(Object.keys(outcome.metrics.perClass ?? {})).toEqual(outcome.classes);
    const confusionTotal = (outcome.metrics.confusion ?? []).flat().reduce((a, b) => a + b, 0);
    expect(confusionTotal).toBe(225);
    expect(outcome.classDistribution.normal).toBeGreaterThan(0.5);
    expect(outcome.epochsRun).toBeLessThanOrEqual(40);
  });

  it('is reproducible for a seed and backend: the same weights, byte for byte', async () => {
    const config = TrainingConfigSchema.parse({ epochs: 6, seed: 9 });
    const small = generateDemoDataset({ rows: 400, seed: 2 });
    const first = await trainFromCsv(small, config);
    const second = await trainFromCsv(small, config);
    const other = await trainFromCsv(small, { ...config, seed: 10 });
    expect(sha256Hex(second.artifacts.weights)).toBe(sha256Hex(first.artifacts.weights));
    expect(second.metrics).toEqual(first.metrics);
    expect(sha256Hex(other.artifacts.weights)).not.toBe(sha256Hex(first.artifacts.weights));
  });
});

describe('what travels with the model', () => {
  it('the device path (manifest preprocessing + loader) reproduces the trainer golden outputs', async () => {
    // Prepare: train, build and sign the manifest, and keep only bytes, as the device sees them.
    const outcome = await trainFromCsv(
      generateDemoDataset({ rows: 400 }),
      TrainingConfigSchema.parse({ epochs: 8 }),
    );
    const keys = generateSigningKeyPair();
    const signed = await signManifest(
      buildManifest({
        model: 'demo',
        version: 1,
        outcome,
        lowConfidence: 0.6,
        datasetKey: 'datasets/demo/a.csv',
        datasetSha256: sha256Hex('x'),
      }),
      pemSigner(keys.privateKeyPem),
    );
    const manifest = ManifestSchema.parse(JSON.parse(new TextDecoder().decode(manifestBytes(signed))));
    // Act
    verifyManifestSignature(manifest, keys.publicKeyPem);
    const model = await loadModelFromArtifacts(outcome.artifacts.modelJson, outcome.artifacts.weights);
    const probabilities = predictProbabilities(
      model,
      transformRows(manifest.preprocessing, manifest.golden.rows),
      manifest.preprocessing.inputWidth,
    );
    model.dispose();
    // Assess
    expect(manifest.golden.rows.length).toBe(5);
    manifest.golden.outputs.flat().forEach((expected, i) => {
      expect(Math.abs((probabilities[i] ?? Number.NaN) - expected)).toBeLessThanOrEqual(
        manifest.golden.tolerance,
      );
    });
    expect(manifest.files.map((file) => [file.name, file.size])).toEqual([
      ['model.json', outcome.artifacts.modelJson.byteLength],
      ['weights.bin', outcome.artifacts.weights.byteLength],
    ]);
  });

  it.each(['uint8', 'float16'] as const)(
    '%s quantization shrinks the weights and still loads and predicts',
    async (quantize) => {
      const csv = generateDemoDataset({ rows: 500 });
      const full = await trainFromCsv(csv, TrainingConfigSchema.parse({ epochs: 10 }));
      const small = await trainFromCsv(csv, TrainingConfigSchema.parse({ epochs: 10, quantize }));
      const ratio = small.artifacts.weights.byteLength / full.artifacts.weights.byteLength;
      expect(ratio).toBe(quantize === 'uint8' ? 0.25 : 0.5);
      expect(Math.abs((small.metrics.accuracy ?? 0) - (full.metrics.accuracy ?? 0))).toBeLessThan(0.03);
      expect(small.metrics.quantization).toEqual({
        dtype: quantize,
        sizeRatio: ratio,
        accuracyDelta: Math.round(((small.metrics.accuracy ?? 0) - (full.metrics.accuracy ?? 0)) * 1e6) / 1e6,
      });
      expect(full.metrics.quantization).toBeUndefined();
    },
  );
});

describe('awkward but valid fixture files', () => {
  it.each(AWKWARD)('%s trains and is evaluated on held-out rows', async (file) => {
    const outcome = await trainFromCsv(fixture(file), TrainingConfigSchema.parse({ epochs: 3 }), {
      source: file,
    });
    expect(outcome.metrics.testRows).toBeGreaterThan(0);
    expect(outcome.artifacts.weights.byteLength).toBeGreaterThan(0);
    expect(outcome.golden.outputs[0]?.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 3);
  });
});
