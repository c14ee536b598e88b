import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../bench/support/cli.ts';
import { bytesPart } from '../../shared/dataset/source.ts';
import { InputError } from '../../shared/errors.ts';
import { ManifestSchema, TrainingConfigSchema } from '../../shared/schemas.ts';
import { trainWindowsFromCsv, trainWindowsFromSource } from '../../shared/timeseries/train.ts';
import { generateVibrationCsv } from '../../shared/timeseries/vibration-dataset.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgeloop-windows-'));
const file = join(dir, 'vibration.csv');
writeFileSync(file, generateVibrationCsv({ machines: 10, readings: 2000, seed: 3 }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const windowFlags = ['--time', 'ts', '--series', 'machine', '--window-ms', '1000', '--stride-ms', '500'];

describe('edgeloop train with window flags', () => {
  it('trains a spectral window model on long-format readings and ships its window in the manifest', async () => {
    // Prepare
    const outDir = join(dir, 'spectral');

    // Act
    const result = await runCli([
      'train',
      file,
      '--model',
      'fan',
      '--label',
      'state',
      ...windowFlags,
      '--epochs',
      '40',
      '--out',
      outDir,
      '--json',
    ]);

    // Assess
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout.trim().split('\n').pop() ?? '');
    expect(summary.metrics.accuracy).toBeGreaterThan(0.85);
    expect(summary.features).toEqual(['ax', 'ay', 'az']);
    expect(summary.window).toMatchObject({ frequencyHz: 100, samples: 100, stride: 50, series: 'machine' });
    expect(summary.notices.join(' ')).toMatch(/inferred from the median interval/);
    expect(summary.notices.join(' ')).toMatch(/split by series: 6 series train, 2 validate, 2 test/);
    const manifest = ManifestSchema.parse(JSON.parse(readFileSync(join(outDir, 'manifest.json'), 'utf8')));
    expect(manifest.window?.features.kind).toBe('spectral');
    expect(manifest.window?.golden.windows).toHaveLength(5);
    expect(manifest.window?.golden.windows[0]).toHaveLength(100);
    expect(manifest.window?.golden.outputs[0]).toHaveLength(4);
    expect(manifest.metrics.testRows).toBe(summary.windows.test);
  });

  it('trains a GRU over the window with --features raw', async () => {
    // Act
    const outcome = await trainWindowsFromCsv(
      readFileSync(file),
      TrainingConfigSchema.parse({
        label: 'state',
        epochs: 2,
        window: { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500, features: 'raw' },
      }),
    );

    // Assess: 100 samples of 3 channels as 10 steps of 10 samples.
    const topology = JSON.parse(new TextDecoder().decode(outcome.artifacts.modelJson));
    expect(JSON.stringify(topology.modelTopology)).toContain('"class_name":"GRU"');
    expect(outcome.window?.manifest.features).toMatchObject({ kind: 'raw', frame: 10 });
    expect(outcome.preprocessing.inputWidth).toBe(300);
  });

  it('reads labelled hard-example windows that follow the dataset newest first', async () => {
    // Prepare: one 1.2 s window of a gateway's series, its rows reversed as feedback comes.
    const text = readFileSync(file, 'utf8');
    const base = text.trim().split('\n').length - 1;
    const window = Array.from({ length: 120 }, (_, i) => [
      String(1_800_000_000_000 + i * 10),
      'gw-1/m01@0',
      '0.1',
      '0.2',
      String(1 + (i % 3) / 10),
      'normal',
    ]);
    const source = {
      name: 'fans.csv',
      parts: [bytesPart('fans.csv', text)],
      extra: () => [...window].reverse(),
    };

    // Act
    const outcome = await trainWindowsFromSource(
      source,
      TrainingConfigSchema.parse({
        label: 'state',
        epochs: 1,
        window: { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 },
      }),
    );

    // Assess
    expect(outcome.rows).toBe(base + 120);
    expect(outcome.extraRows).toBe(120);
  });

  it('rejects readings out of time order with the row to fix', async () => {
    // Prepare: swap two readings of one machine.
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    [lines[5], lines[6]] = [lines[6] as string, lines[5] as string];
    const config = TrainingConfigSchema.parse({
      label: 'state',
      window: { time: 'ts', series: 'machine', sizeMs: 1000, strideMs: 500 },
    });

    // Act
    const run = trainWindowsFromCsv(lines.join('\n'), config, { source: 'fans.csv' });

    // Assess
    await expect(run).rejects.toThrow(InputError);
    await expect(run).rejects.toThrow(
      /fans\.csv: data row 6: time \d+ in series 'm01' is before the reading at data row 5 .*sort the readings by series and time/,
    );
  });

  it.each([
    [['--series', 'machine'], /--series need --time COL/],
    [['--time', 'ts'], /--time needs --window-ms N/],
    [['--time', 'ts', '--window-ms', '500', '--stride-ms', '900'], /strideMs must not exceed sizeMs/],
  ])('refuses incomplete window flags %j', async (flags, message) => {
    const result = await runCli(['train', file, '--model', 'fan', ...flags]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});
