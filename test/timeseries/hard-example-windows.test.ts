import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HardExampleSampler } from '../../device/results/hard-examples.ts';
import type { WindowResult } from '../../device/sources/window-stream.ts';
import { feedbackRecords, parseFeedback } from '../../shared/feedback.ts';
import type { Manifest, ResolvedWindow } from '../../shared/schemas.ts';
import { LongFormatCollector } from '../../shared/timeseries/long-format.ts';
import { WindowSpecSchema } from '../../shared/timeseries/spec.ts';
import { windowsOf } from '../../shared/timeseries/windower.ts';

const spec: ResolvedWindow = {
  time: 'ts',
  series: 'machine',
  timeUnit: 'ms',
  channels: ['ax', 'ay'],
  frequencyHz: 10,
  samples: 4,
  stride: 2,
  maxGapMs: 300,
  short: 'drop',
};
const manifest = {
  version: 2,
  lowConfidence: 0.6,
  preprocessing: { label: 'state', labels: ['idle', 'run'], inputWidth: 8, features: [] },
  window: { spec },
} as unknown as Manifest;

/** Two windows of machine m1 (x = i, y = -i every 100 ms), the first unsure, the second sure. */
function results(): WindowResult[] {
  const times = Float64Array.from({ length: 6 }, (_, i) => 1000 + i * 100);
  const values = Float32Array.from({ length: 12 }, (_, j) => (j % 2 ? -1 : 1) * Math.floor(j / 2) + 0);
  const windows = windowsOf('m1', spec, times, values, ['run', 'run', 'run', 'run', 'run', 'idle']);
  return windows.map((window, i) => ({
    window,
    version: 2,
    result: {
      id: `gw-1:0:m1:${window.end}`,
      ts: 1_700_000_000_000,
      label: 'run',
      confidence: i === 0 ? 0.4 : 0.9,
      latencyMs: 1,
      ...(window.label ? { truth: window.label } : {}),
      window: { series: window.series, start: window.start, end: window.end },
    },
  }));
}

describe('hard examples of a windowed model', () => {
  const s3 = mockClient(S3Client);
  let dir: string;
  beforeEach(async () => {
    s3.reset();
    dir = await mkdtemp(join(tmpdir(), 'edgeloop-hard-windows-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keep an unsure window whole, in long format, so a retrain reads it back as that window', async () => {
    // Prepare
    s3.on(PutObjectCommand).resolves({});
    const sampler = await HardExampleSampler.open({
      thing: 'gw-1',
      model: 'fans',
      dir,
      s3: new S3Client({ region: 'us-east-1' }),
      options: { bucket: 'datasets', flushMs: 60_000 },
    });
    const [unsure] = results();

    // Act
    sampler.offerWindows(results(), manifest);
    await sampler.stop();

    // Assess: one window (one token), one row per sample, under a series of its own.
    expect(sampler.stats()).toMatchObject({ sampled: 4, dropped: 0, uploadedFiles: 1, uploadedRows: 4 });
    const table = parseFeedback(String(s3.commandCalls(PutObjectCommand)[0]?.args[0].input.Body));
    expect(table.header.slice(-5)).toEqual(['ts', 'machine', 'ax', 'ay', 'state']);
    // Merged into the dataset (newest first, as feedback comes) and collected as the trainer does.
    const header = ['ts', 'machine', 'ax', 'ay', 'state'];
    const merged = feedbackRecords(header, [table], 100);
    merged.sort((a, b) => Number(a[0]) - Number(b[0]));
    const collector = new LongFormatCollector(
      header,
      WindowSpecSchema.parse({ time: 'ts', series: 'machine', sizeMs: 400, strideMs: 200 }),
      'state',
      undefined,
    );
    merged.forEach((cells, i) => {
      collector.add(cells, `feedback row ${i + 1}`);
    });
    const [series] = collector.finish().series;
    expect(series?.name).toBe('gw-1/m1@1000');
    const again = windowsOf(
      series?.name ?? '',
      spec,
      series?.times ?? [],
      series?.values ?? new Float32Array(0),
      series?.labels,
    );
    expect(again).toHaveLength(1);
    expect(Array.from(again[0]?.values ?? [])).toEqual(Array.from(unsure?.window.values ?? []));
    expect(again[0]?.label).toBe('run');
  });
});
