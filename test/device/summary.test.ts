/**
 * Summary mode on the gateway: the summarizer (SummaryBatcher over SummaryCells), its
 * batches in the outbox (same ids after a restart), on the wire (the cloud's own decoder and
 * cell checks), and in the result writer (the same cells detail mode's results give).
 */
import { EventEmitter } from 'node:events';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { resolveConfig } from '../../device/config.ts';
import type { MqttLink } from '../../device/platform/connection.ts';
import type { BatchInput } from '../../device/results/batch-log.ts';
import type { BatchSink } from '../../device/results/batcher.ts';
import { Outbox, type StoredBatch } from '../../device/results/outbox.ts';
import { Publisher } from '../../device/results/publisher.ts';
import { ReplayEncoder, truthColumn } from '../../device/results/result-encoding.ts';
import { type ReplayChunk, ResultStream } from '../../device/results/result-writer.ts';
import { MAX_SUMMARY_CELLS, SummaryBatcher } from '../../device/results/summary-batcher.ts';
import { resultsRouteOf } from '../../device/service.ts';
import { cellsByMinute, emptyCell, mergeCells } from '../../shared/aggregation/aggregate.ts';
import { checkSummaryCells, decodeAnyBatch, summarizeResults } from '../../shared/aggregation/summary.ts';
import type { InferenceResult, SummaryCell } from '../../shared/schemas.ts';
import { LOCAL_STAGE, policyAllows } from '../../shared/topology.ts';
import { removeTempDirs, tempDir } from './helpers.ts';

afterAll(removeTempDirs);
afterEach(() => {
  vi.useRealTimers();
});

const MINUTE = 60_000;
const T0 = 1_764_000_000_000 - (1_764_000_000_000 % MINUTE);
const LOW = 0.6;
const labels = ['normal', 'hot', 'cold'];

/** Results spread over `minutes` minutes, every third with truth (right or wrong). */
function results(n: number, minutes = 1, from = 0): InferenceResult[] {
  return Array.from({ length: n }, (_, k) => {
    const i = from + k;
    const label = labels[i % 3] as string;
    return {
      id: `gw:${i}`,
      ts: T0 + Math.floor((k * minutes) / n) * MINUTE + (i % 50),
      label,
      confidence: ((i * 37) % 100) / 100,
      latencyMs: 0.25 + (i % 13) * 0.7,
      ...(i % 3 === 0 ? { truth: i % 2 === 0 ? label : 'cold' } : {}),
    };
  });
}

/** A sink that keeps what it is given, as the outbox's BatchLog would store it. */
function memorySink(): BatchSink & { inputs: BatchInput[] } {
  const inputs: BatchInput[] = [];
  return {
    inputs,
    append: async (input) => {
      inputs.push(input);
      return true;
    },
    flush: async () => undefined,
  };
}

const summaryOf = (input: BatchInput | undefined) => {
  if (!input || !('summary' in input)) throw new Error('not a summary batch');
  return input.summary;
};

describe('summary batcher', () => {
  it('folds results into the cells the cloud would count from the same results', async () => {
    // Prepare
    const sink = memorySink();
    const batcher = new SummaryBatcher(sink, 'm');
    const sent = results(500, 3);

    // Act
    batcher.add(1, LOW, sent.slice(0, 200), 200);
    batcher.add(1, LOW, sent.slice(200), 500);
    await batcher.flush();

    // Assess: one batch (the interval has not passed), one cell per minute, all of them valid
    expect(sink.inputs).toHaveLength(1);
    const { cells, count } = summaryOf(sink.inputs[0]);
    expect(count).toBe(500);
    expect(sink.inputs[0]?.csvNext).toBe(500);
    expect(cells.map((cell) => cell.minute)).toEqual([T0, T0 + MINUTE, T0 + 2 * MINUTE]);
    expect(cells).toEqual(summarizeResults(sent, LOW));
    const checked = checkSummaryCells(cells, { receivedAt: T0 + 3 * MINUTE, labels });
    expect(checked.rejected).toEqual([]);
    expect(checked.cells).toEqual(
      cellsByMinute(sent, LOW).map(({ minute, cell }) => ({
        minute,
        // Sums travel rounded to 1e-6; counts and histograms are exact.
        cell: {
          ...cell,
          confidenceSum: expect.closeTo(cell.confidenceSum, 5),
          latencySumMs: expect.closeTo(cell.latencySumMs, 5),
        },
      })),
    );
    const total = checked.cells.reduce((sum, { cell }) => mergeCells(sum, cell), emptyCell());
    expect([total.count, total.labelled, total.correct]).toEqual([500, 167, 84]);
  });

  it('cuts a batch when the model version changes, so each batch has one version', async () => {
    // Prepare
    const sink = memorySink();
    const batcher = new SummaryBatcher(sink, 'm');

    // Act
    batcher.add(1, LOW, results(30), 30);
    batcher.add(2, 0.9, results(20, 1, 30), 50);
    await batcher.flush();

    // Assess: v2 counts low confidence with its own threshold
    expect(sink.inputs.map((input) => [input.version, summaryOf(input).count, input.csvNext])).toEqual([
      [1, 30, 30],
      [2, 20, 50],
    ]);
    expect(summaryOf(sink.inputs[1]).cells).toEqual(summarizeResults(results(20, 1, 30), 0.9));
  });

  it('cuts before a batch would hold more cells than the schema allows, at the exact CSV position', async () => {
    // Prepare: one result per minute for more minutes than a batch may hold
    const sink = memorySink();
    const batcher = new SummaryBatcher(sink, 'm');
    const n = MAX_SUMMARY_CELLS + 6;
    const sent = results(n, n);

    // Act
    batcher.add(1, LOW, sent, 1_000 + n);
    await batcher.flush();

    // Assess
    expect(sink.inputs.map((input) => [summaryOf(input).cells.length, input.csvNext])).toEqual([
      [MAX_SUMMARY_CELLS, 1_000 + MAX_SUMMARY_CELLS],
      [6, 1_000 + n],
    ]);
  });

  it('sends what it collected once the interval has passed', async () => {
    // Prepare
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const sink = memorySink();
    const batcher = new SummaryBatcher(sink, 'm', { maxAgeMs: 10_000 });

    // Act
    batcher.add(1, LOW, results(10), 10);
    await vi.advanceTimersByTimeAsync(9_000);
    const before = sink.inputs.length;
    batcher.add(1, LOW, results(5, 1, 10), 15);
    await vi.advanceTimersByTimeAsync(1_000);

    // Assess: the interval counts from the batch's first result
    expect(before).toBe(0);
    expect(sink.inputs.map((input) => summaryOf(input).count)).toEqual([15]);
  });

  it('refuses further results once a batch could not be stored', async () => {
    // Prepare
    const batcher = new SummaryBatcher(
      { append: async () => Promise.reject(new Error('EIO: disk gone')), flush: async () => undefined },
      'm',
    );

    // Act
    batcher.add(1, LOW, results(3), 3);
    const flushed = batcher.flush();

    // Assess
    await expect(flushed).rejects.toThrow(/a summary batch could not be stored: EIO/);
    expect(() => batcher.add(1, LOW, results(1), 4)).toThrow(/EIO/);
  });
});

/** A link that acknowledges every publish and keeps the topic and payload. */
function recordingLink() {
  const sent: { topic: string; payload: string }[] = [];
  const link = Object.assign(new EventEmitter(), {
    connected: true,
    connect: async () => undefined,
    subscribe: async () => undefined,
    disconnect: async () => undefined,
    publish: async (topic: string, payload: Buffer | string) => {
      sent.push({ topic, payload: payload.toString() });
    },
  }) as MqttLink;
  return { link, sent };
}

describe('summary batches in the outbox and on the wire', () => {
  it('come back after a restart with the same batch id, count, position and cells', async () => {
    // Prepare
    const dir = await tempDir();
    const outbox = await Outbox.open(dir);
    const cells = summarizeResults(results(120, 2), LOW);
    await outbox.append({ model: 'm', version: 3, summary: { cells, count: 120 }, csvNext: 120 });
    const before = outbox.take() as StoredBatch;

    // Act: a restart without the PUBACK
    const reopened = await Outbox.open(dir);
    const after = reopened.take() as StoredBatch;

    // Assess
    expect(after).toMatchObject({ batchId: before.batchId, mode: 'summary', count: 120, version: 3 });
    expect(reopened.csvNext).toBe(120);
    expect(reopened.depthResults).toBe(120);
    expect(JSON.parse((await reopened.readResults(after)).toString())).toEqual(cells);
  });

  it('go out in the shape the stream aggregator decodes, detail batches unchanged beside them', async () => {
    // Prepare
    const outbox = await Outbox.open(await tempDir());
    const cells = summarizeResults(results(40), LOW);
    await outbox.append({ model: 'm', version: 1, summary: { cells, count: 40 } });
    await outbox.append({ model: 'm', version: 1, results: results(2) });
    const { link, sent } = recordingLink();
    const topic = '$aws/rules/edgeloop_results_stream_local/edgeloop/things/gw-1/results';
    const publisher = new Publisher(outbox, link, topic);
    const bytes: number[] = [];
    publisher.on('published', (event: { bytes: number }) => bytes.push(event.bytes));

    // Act
    publisher.start();
    await vi.waitFor(() => expect(sent).toHaveLength(2));
    await publisher.stop();

    // Assess
    // The publisher keeps several publishes in flight, so the two may go out in either order.
    const decoded = sent.map(({ payload }) => decodeAnyBatch(JSON.parse(payload)));
    const modeOf = (d: (typeof decoded)[number]) => (d.ok ? d.value.mode : undefined);
    const summary = decoded.find((d) => modeOf(d) === 'summary');
    const detail = decoded.find((d) => modeOf(d) === 'detail');
    expect(summary).toMatchObject({ ok: true, value: { mode: 'summary', envelope: { cells, version: 1 } } });
    expect(detail).toMatchObject({ ok: true, value: { mode: 'detail' } });
    expect(sent.map((message) => message.topic)).toEqual([topic, topic]);
    expect(bytes).toEqual(sent.map(({ payload }) => Buffer.byteLength(payload)));
    expect(outbox.depth).toBe(0);
  });
});

describe('summary mode in the result writer', () => {
  const rows = [{ label: 'normal' }, { label: 'hot' }, { label: '' }, {}, { label: 'cold' }];
  const truths = truthColumn(rows, 'label');

  function chunks(sizes: number[], version = 1): ReplayChunk[] {
    let first = 0;
    return sizes.map((n, k) => {
      const chunk: ReplayChunk = {
        version,
        first,
        labels,
        best: Int32Array.from({ length: n }, (_, i) => (first + i) % 3),
        confidence: Float32Array.from({ length: n }, (_, i) => ((first + i) % 89) / 89),
        latencyMs: 0.7 + k / 3,
        // Chunks straddle a minute boundary.
        ts: T0 + MINUTE - 500 + k * 400,
        csvNext: first + n,
      };
      first += n;
      return chunk;
    });
  }

  it('counts replay chunks exactly as the cloud counts the same chunks sent in detail mode', async () => {
    // Prepare
    const input = chunks([300, 450, 120]);
    const encoder = new ReplayEncoder('gw-1');
    const detail = input.flatMap((chunk) => {
      const encoded = encoder.encode(chunk.first, chunk.best.length, chunk, truths, chunk.ts);
      const end = encoded.ends[encoded.count - 1] ?? 0;
      return JSON.parse(`[${Buffer.from(encoded.bytes.subarray(0, end)).toString()}]`) as InferenceResult[];
    });
    const outbox = await Outbox.open(await tempDir());
    const stream = new ResultStream(outbox, { thing: 'gw-1', model: 'm', summary: { maxAgeMs: 60_000 } });
    stream.setModel(1, LOW);

    // Act
    stream.setTruths(truths);
    for (const chunk of input) stream.addReplay(chunk);
    await stream.close();

    // Assess: one summary batch, two minutes, the same cells as detail mode's results give
    const batch = outbox.take() as StoredBatch;
    expect(outbox.take()).toBeUndefined();
    expect(batch).toMatchObject({ mode: 'summary', count: 870, csvNext: 870 });
    const cells = JSON.parse((await outbox.readResults(batch)).toString()) as SummaryCell[];
    expect(cells).toHaveLength(2);
    expect(cells).toEqual(summarizeResults(detail, LOW));
    expect(stream.backlog).toBe(0);
  });

  it('keeps a fast source going while its results wait in open cells for the interval', async () => {
    // Prepare: more results than may wait unstored (16,384), with an interval far away
    const outbox = await Outbox.open(await tempDir());
    const stream = new ResultStream(outbox, { thing: 'gw-1', model: 'm', summary: { maxAgeMs: 600_000 } });
    stream.setModel(1, LOW);
    stream.setTruths(truths);

    // Act: a CSV replay hands over chunks and waits on drain() after each, as sources.ts does
    for (const chunk of chunks(Array.from({ length: 50 }, () => 500))) {
      stream.addReplay(chunk);
      await stream.drain();
    }
    const waitingInCells = stream.backlog;
    await stream.close();

    // Assess: nothing was stored before the cut, and the one batch holds every result
    expect(waitingInCells).toBe(25_000);
    expect(outbox.take()).toMatchObject({ mode: 'summary', count: 25_000, csvNext: 25_000 });
  });

  it('summarizes results made on the main thread (stdin, /infer) too', async () => {
    // Prepare
    const outbox = await Outbox.open(await tempDir());
    const stream = new ResultStream(outbox, { thing: 'gw-1', model: 'm', summary: { maxAgeMs: 60_000 } });
    stream.setModel(4, 0.8);
    const sent = results(25);

    // Act
    stream.add(4, sent);
    await stream.close();

    // Assess
    const batch = outbox.take() as StoredBatch;
    expect(batch).toMatchObject({ mode: 'summary', count: 25, version: 4 });
    expect(JSON.parse((await outbox.readResults(batch)).toString())).toEqual(summarizeResults(sent, 0.8));
  });
});

describe('results route', () => {
  it('publishes to the results stream rule of the stage by Basic Ingest, which the thing policy allows', () => {
    // Act
    const route = resultsRouteOf('gw-7', { mode: 'summary', basicIngestStage: LOCAL_STAGE });

    // Assess
    expect(route).toEqual({
      topic: '$aws/rules/edgeloop_results_stream_local/edgeloop/things/gw-7/results',
      summary: { maxAgeMs: 10_000 },
    });
    expect(policyAllows('iot:Publish', 'gw-7', route.topic)).toBe(true);
    expect(resultsRouteOf('gw-7').topic).toBe('edgeloop/things/gw-7/results');
  });

  it('refuses summary mode by the broker, whose rule reads detail batches only', () => {
    // Prepare
    const base = { thing: 'gw-1', model: 'm', stateDir: '/tmp/x', mqttEndpoint: 'mqtt://127.0.0.1:1883' };
    const publicKeyFile = new URL(import.meta.url).pathname;

    // Act / Assess
    expect(() => resultsRouteOf('gw-1', { mode: 'summary' })).toThrow(/summary mode needs Basic Ingest/);
    expect(() =>
      resolveConfig({ ...base, publicKeyFile, resultsMode: 'summary', resultsRoute: 'broker' }),
    ).toThrow(/resultsMode 'summary' cannot go by the broker/);
    expect(() => resolveConfig({ ...base, publicKeyFile, resultsMode: 'summary' })).toThrow(
      /needs the deployed stage whose rule it publishes to: set stage \(--stage or EDGELOOP_DEVICE_STAGE/,
    );
    expect(resolveConfig({ ...base, publicKeyFile, resultsMode: 'summary', stage: 'prod' })).toMatchObject({
      resultsMode: 'summary',
      stage: 'prod',
    });
  });
});
