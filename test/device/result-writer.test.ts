import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ResultBatcher } from '../../device/results/batcher.ts';
import { JOURNAL_DIR } from '../../device/results/open-batch-journal.ts';
import { Outbox, type StoredBatch } from '../../device/results/outbox.ts';
import { ReplayEncoder, toResult, truthColumn } from '../../device/results/result-encoding.ts';
import { type ReplayChunk, ResultStream } from '../../device/results/result-writer.ts';
import { removeTempDirs, tempDir } from './helpers.ts';

afterAll(removeTempDirs);

const labels = ['normal', 'überhitzt'];
const rows = [{ label: 'normal' }, { label: 'überhitzt' }, { label: '' }, {}, { label: 'normal' }];
const truths = truthColumn(rows, 'label');

/** Classified replay chunks: `sizes` readings each, from position `start`, by version 1 then 2. */
function chunks(start: number, sizes: number[]): ReplayChunk[] {
  let first = start;
  return sizes.map((n, k) => {
    const chunk: ReplayChunk = {
      version: k < sizes.length - 1 ? 1 : 2, // the last chunk comes from a newly swapped model
      first,
      labels,
      best: Int32Array.from({ length: n }, (_, i) => (first + i) % 2),
      confidence: Float32Array.from({ length: n }, (_, i) => ((first + i) % 97) / 97),
      latencyMs: 1.5 + k,
      ts: 1_764_000_000_000 + k,
      csvNext: first + n,
    };
    first += n;
    return chunk;
  });
}

/** Everything an outbox holds, in order, as the publisher would send it. */
async function contents(outbox: Outbox) {
  const out: { version: number; csvNext?: number; results: unknown[] }[] = [];
  for (let batch = outbox.take(); batch; batch = outbox.take()) {
    out.push({
      version: batch.version,
      ...(batch.csvNext !== undefined ? { csvNext: batch.csvNext } : {}),
      results: JSON.parse((await outbox.readResults(batch)).toString()) as unknown[],
    });
  }
  return out;
}

describe('result writer', () => {
  it('stores exactly the batches the same encoder and batcher store in-thread', async () => {
    // Prepare: chunks that cross batch limits and a model version change, plus /infer results
    const input = chunks(3, [300, 450, 120, 333]);
    const extra = [
      toResult('gw:http:1', { label: 'normal', confidence: 0.5, version: 2, latencyMs: 2 }, 'normal', 9),
    ];
    const inline = await Outbox.open(await tempDir());
    const batcher = new ResultBatcher(inline, 'm', () => undefined, { maxResults: 400 });
    const encoder = new ReplayEncoder('gw-1');
    const threaded = await Outbox.open(await tempDir());
    const persisted: [boolean, number][] = [];
    const stream = new ResultStream(
      threaded,
      { thing: 'gw-1', model: 'm', batch: { maxResults: 400 } },
      (accepted, count) => persisted.push([accepted, count]),
    );

    // Act
    for (const chunk of input) {
      batcher.addEncoded(
        chunk.version,
        encoder.encode(chunk.first, chunk.best.length, chunk, truths, chunk.ts),
        chunk.csvNext,
      );
    }
    batcher.add(2, extra);
    await batcher.flush();
    stream.setTruths(truths);
    for (const chunk of input) stream.addReplay(chunk);
    stream.add(2, extra);
    await stream.flush();
    await stream.close();

    // Assess
    const expected = await contents(inline);
    expect(expected.length).toBeGreaterThan(3);
    expect(await contents(threaded)).toEqual(expected);
    expect(persisted.map(([accepted]) => accepted)).toEqual(expected.map(() => true));
    expect(persisted.reduce((n, [, count]) => n + count, 0)).toBe(1_204);
    expect(stream.backlog).toBe(0);
    expect(threaded.csvNext).toBe(1_206);
  });

  it('keeps the streams of several devices in one process apart', async () => {
    // Prepare: a fleet-sim runs many devices, and one writer thread for all of them
    const outboxes = await Promise.all([1, 2, 3].map(async () => Outbox.open(await tempDir())));
    const streams = outboxes.map((outbox, i) => new ResultStream(outbox, { thing: `gw-${i}`, model: 'm' }));

    // Act
    for (const [i, stream] of streams.entries()) {
      stream.setTruths(truths);
      for (const chunk of chunks(0, [100 * (i + 1)])) stream.addReplay(chunk);
    }
    await Promise.all(streams.map((stream) => stream.close()));

    // Assess
    for (const [i, outbox] of outboxes.entries()) {
      const results = (await contents(outbox)).flatMap((batch) => batch.results) as { id: string }[];
      expect(results).toHaveLength(100 * (i + 1));
      expect(new Set(results.map((result) => result.id.split(':')[0]))).toEqual(new Set([`gw-${i}`]));
    }
  });

  it('reports a batch it cannot store, and refuses more results after it', async () => {
    // Prepare: the outbox directory disappears under the device (a failed or unmounted disk)
    const dir = await tempDir();
    const outbox = await Outbox.open(dir);
    const stream = new ResultStream(outbox, { thing: 'gw', model: 'm' });
    await rm(dir, { recursive: true });

    // Act
    stream.setTruths(truths);
    stream.addReplay(chunks(0, [10])[0] as ReplayChunk);
    const flushed = stream.flush();

    // Assess: the reason reaches the source, and no position moves past the lost readings
    await expect(flushed).rejects.toThrow(/a result batch could not be stored: ENOENT/);
    expect(() => stream.addReplay(chunks(10, [10])[0] as ReplayChunk)).toThrow(/ENOENT/);
    expect(outbox.depth).toBe(0);
    expect(outbox.csvNext).toBe(0);
  });
});

describe('outbox segments', () => {
  async function segmentFiles(dir: string) {
    return (await readdir(dir)).filter((name) => /^\d{12}\.json$/.test(name));
  }

  it('stores a group of batches in one file and deletes it after the last of them is acknowledged', async () => {
    // Prepare: three batches appended together commit as one group
    const dir = await tempDir();
    const outbox = await Outbox.open(dir);
    const one = (i: number) => [{ id: `t:${i}`, ts: 1, label: 'a', confidence: 1, latencyMs: 0 }];
    await Promise.all(
      [0, 1, 2].map((i) => outbox.append({ model: 'm', version: 1, results: one(i), csvNext: i + 1 })),
    );
    const files = await segmentFiles(dir);
    const [a, b, c] = [outbox.take(), outbox.take(), outbox.take()] as [
      StoredBatch,
      StoredBatch,
      StoredBatch,
    ];

    // Act
    outbox.ack(a.seq);
    outbox.ack(c.seq);
    await outbox.flush();
    const whileOneIsLeft = await segmentFiles(dir);
    outbox.ack(b.seq);
    await outbox.flush();

    // Assess
    expect(files).toHaveLength(1);
    expect(whileOneIsLeft).toEqual(files);
    expect(await segmentFiles(dir)).toEqual([]);
    expect((await Outbox.open(dir)).csvNext).toBe(3);
  });

  it('offers again after a restart every batch whose file is still there (same ids, counted once upstream)', async () => {
    // Prepare
    const dir = await tempDir();
    const outbox = await Outbox.open(dir);
    const one = (i: number) => [{ id: `t:${i}`, ts: 1, label: 'a', confidence: 1, latencyMs: 0 }];
    await Promise.all([0, 1].map((i) => outbox.append({ model: 'm', version: 1, results: one(i) })));
    const first = outbox.take() as StoredBatch;
    const second = outbox.take() as StoredBatch;
    outbox.ack(first.seq);
    await outbox.flush();

    // Act: a restart while the second batch is unacknowledged
    const reopened = await Outbox.open(dir);

    // Assess: the acknowledged batch comes back too (a duplicate on the wire, same batch id)
    expect([reopened.take()?.batchId, reopened.take()?.batchId]).toEqual([first.batchId, second.batchId]);
    expect(reopened.take()).toBeUndefined();
  });

  it('deletes a refused batch with its file once nothing else in the file is waiting', async () => {
    // Prepare
    const dir = await tempDir();
    const outbox = await Outbox.open(dir, { maxBatches: 1, overflow: 'reject' });
    const one = (i: number) => [{ id: `t:${i}`, ts: 1, label: 'a', confidence: 1, latencyMs: 0 }];
    await outbox.append({ model: 'm', version: 1, results: one(0) });

    // Act
    const accepted = await outbox.append({ model: 'm', version: 1, results: one(1) });
    await outbox.flush();

    // Assess
    expect(accepted).toBe(false);
    expect(await segmentFiles(dir)).toHaveLength(1);
    expect(outbox.dropped).toBe(1);
  });

  /** Durable-latency figures of 3 results whose readings came 40 ms before their predict ended. */
  async function durableLatencyOf(maxAgeMs: number, durableWithinMs: number | undefined) {
    const dir = await tempDir();
    const stream = new ResultStream(await Outbox.open(dir), {
      thing: 'gw',
      model: 'm',
      batch: { maxAgeMs, ...(durableWithinMs !== undefined ? { durableWithinMs } : {}) },
    });
    const result = (i: number) =>
      toResult(`gw:http:${i}`, { label: 'a', confidence: 0.9, version: 1, latencyMs: 40 }, undefined, 1);
    expect(stream.durableLatencyPercentiles()).toEqual({ p50: null, p99: null });
    stream.add(1, [result(0), result(1), result(2)]);
    // The batch is cut by its age, not by a flush: wait until it is durable.
    const deadline = Date.now() + 10_000;
    while (stream.backlog > 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    const figures = stream.durableLatencyPercentiles();
    await stream.close();
    return { figures, journalsLeft: await readdir(join(dir, JOURNAL_DIR)).catch(() => []) };
  }

  it('measures from a reading’s arrival to its result being durable, batch age included without the journal', async () => {
    // Act
    const { figures } = await durableLatencyOf(60, 0);

    // Assess: at least the 40 ms before the predict and the 60 ms the batch stayed open.
    expect(figures.p50).toBeGreaterThanOrEqual(95);
    expect(figures.p99).toBeGreaterThanOrEqual(figures.p50 as number);
    expect(figures.p99).toBeLessThan(10_000);
  });

  it('makes results durable in the open batch’s journal before the batch closes, and removes the journal once the batch is stored', async () => {
    // Act: the default journal (durableWithinMs 20), batches open 2 s
    const { figures, journalsLeft } = await durableLatencyOf(2_000, undefined);

    // Assess: the 40 ms before the predict, then the journal's 20 ms and its fdatasync, not
    // the 2 s the batch stayed open.
    expect(figures.p50).toBeGreaterThanOrEqual(40 + 19);
    expect(figures.p50).toBeLessThan(1_000);
    expect(journalsLeft).toEqual([]);
  });

  it('reports a journal that cannot be written once, keeps results durable by their batches, and says when journalling works again', async () => {
    // Prepare: a file where the journal's directory goes, so every journal write fails.
    const dir = await tempDir();
    await writeFile(join(dir, JOURNAL_DIR), 'not a directory');
    const messages: string[] = [];
    const stream = new ResultStream(
      await Outbox.open(dir),
      { thing: 'gw', model: 'm', batch: { maxAgeMs: 30 } },
      () => undefined,
      () => undefined,
      (message) => messages.push(message),
    );
    const result = (i: number) =>
      toResult(`gw:http:${i}`, { label: 'a', confidence: 0.9, version: 1, latencyMs: 1 }, undefined, 1);
    const handOver = async (from: number) => {
      for (let i = from; i < from + 5; i++) {
        stream.add(1, [result(i)]);
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
      await stream.flush();
    };

    // Act: five batches while the journal fails, then five once it can be written
    await handOver(0);
    const whileFailing = [...messages];
    await rm(join(dir, JOURNAL_DIR));
    await handOver(5);
    await stream.close();

    // Assess
    expect(whileFailing).toHaveLength(1);
    expect(whileFailing[0]).toMatch(/could not be journalled .*until journal writes work again/);
    expect(messages.slice(1)).toEqual(['results are journalled again']);
    expect((await Outbox.open(dir)).depthResults).toBe(10);
  });
});
