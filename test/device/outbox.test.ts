import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { writeFileDurable } from '../../device/platform/durable.ts';
import { BatchLog, segmentFileName } from '../../device/results/batch-log.ts';
import { MAX_BATCH_BYTES, ResultBatcher } from '../../device/results/batcher.ts';
import { JOURNAL_DIR, journalBatchId } from '../../device/results/open-batch-journal.ts';
import { Outbox, QUARANTINE_DIR, type StoredBatch } from '../../device/results/outbox.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { removeTempDirs, tempDir } from './helpers.ts';

afterAll(removeTempDirs);

function results(from: number, n: number, label = 'hi'): InferenceResult[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `t:${from + i}`,
    ts: 1,
    label,
    confidence: 0.9,
    latencyMs: 1,
  }));
}

/** A stored batch's results, read back from its file. */
async function resultsOf(outbox: Outbox, batch: StoredBatch | undefined): Promise<InferenceResult[]> {
  if (!batch) return [];
  return JSON.parse((await outbox.readResults(batch)).toString()) as InferenceResult[];
}

describe('outbox', () => {
  it('replays the same batch ids after a reopen, in order, until they are acknowledged', async () => {
    // Prepare
    const dir = await tempDir();
    const first = await Outbox.open(dir);
    await first.append({ model: 'm', version: 1, results: results(0, 3), csvNext: 3 });
    await first.append({ model: 'm', version: 1, results: results(3, 2), csvNext: 5 });
    const sentBefore = first.take();

    // Act: a restart without any PUBACK
    const reopened = await Outbox.open(dir);
    const a = reopened.take();
    const b = reopened.take();

    // Assess
    expect([a?.batchId, b?.batchId]).toEqual([sentBefore?.batchId, expect.any(String)]);
    expect(a?.batchId).not.toBe(b?.batchId);
    expect(await resultsOf(reopened, b)).toEqual(results(3, 2));
    expect(reopened.csvNext).toBe(5);
  });

  it('resumes the CSV position from the newest stored batch when the checkpoint file lags', async () => {
    // Prepare
    const dir = await tempDir();
    const outbox = await Outbox.open(dir);
    await outbox.append({ model: 'm', version: 1, results: results(0, 10), csvNext: 10 });

    // Act
    const files = await readdir(dir);
    const reopened = await Outbox.open(dir);

    // Assess: no checkpoint file was needed for the position
    expect(files).not.toContain('checkpoint.json');
    expect(reopened.csvNext).toBe(10);
  });

  it('writes the checkpoint before deleting an acknowledged batch, so the position survives', async () => {
    // Prepare
    const dir = await tempDir();
    const outbox = await Outbox.open(dir);
    await outbox.append({ model: 'm', version: 1, results: results(0, 4), csvNext: 4 });
    const batch = outbox.take();

    // Act
    outbox.ack(batch?.seq ?? -1);
    await outbox.flush();
    const reopened = await Outbox.open(dir);

    // Assess
    expect(reopened.depth).toBe(0);
    expect(reopened.csvNext).toBe(4);
    expect(JSON.parse(await readFile(join(dir, 'checkpoint.json'), 'utf8'))).toEqual({
      csvNext: 4,
      dropped: 0,
    });
  });

  it('drops the oldest unsent batch when full and counts its results (drop-oldest)', async () => {
    // Prepare
    const outbox = await Outbox.open(await tempDir(), { maxBatches: 2, overflow: 'drop-oldest' });

    // Act
    for (let i = 0; i < 4; i++) await outbox.append({ model: 'm', version: 1, results: results(i * 10, 10) });

    // Assess
    expect(outbox.depth).toBe(2);
    expect(outbox.dropped).toBe(20);
    expect((await resultsOf(outbox, outbox.take()))[0]?.id).toBe('t:20');
  });

  it('refuses new batches when full and counts them (reject)', async () => {
    // Prepare
    const outbox = await Outbox.open(await tempDir(), { maxBatches: 1, overflow: 'reject' });

    // Act
    const accepted = [
      await outbox.append({ model: 'm', version: 1, results: results(0, 5) }),
      await outbox.append({ model: 'm', version: 1, results: results(5, 5) }),
    ];

    // Assess
    expect(accepted).toEqual([true, false]);
    expect(outbox.dropped).toBe(5);
    expect((await resultsOf(outbox, outbox.take()))[0]?.id).toBe('t:0');
  });
});

/** Resolves with 'stuck' after `ms` of real time (setInterval: the tests below fake setTimeout). */
function stuckAfter(ms: number): Promise<string> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      clearInterval(timer);
      resolve('stuck');
    }, ms);
  });
}

describe('flush latency', () => {
  // No setTimeout fires in these tests: a flush that waited out the batch log's group timer
  // (GROUP_WAIT_MS, for more batches to join a group) would never end.
  it('a batcher flush commits the open group at once', async () => {
    // Prepare
    const outbox = await Outbox.open(await tempDir());
    const batcher = new ResultBatcher(outbox, 'm', () => undefined, { maxResults: 100 });
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      // Act
      batcher.add(1, results(0, 250), 250);
      const outcome = await Promise.race([batcher.flush().then(() => 'flushed'), stuckAfter(3_000)]);

      // Assess
      expect(outcome).toBe('flushed');
      let stored = 0;
      for (let batch = outbox.take(); batch; batch = outbox.take()) stored += batch.count;
      expect(stored).toBe(250);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a batch appended while a flush commits the group before it does not wait for company', async () => {
    // Prepare
    const dir = await tempDir();
    const log = new BatchLog(dir, 0);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const first = log.append({ model: 'm', version: 1, results: results(0, 5) });
      const flushed = log.flush().then(() => 'flushed');
      // The first group is being written now; the second batch queues behind it.
      await new Promise((resolve) => setImmediate(resolve));
      const second = log.append({ model: 'm', version: 1, results: results(5, 5) });

      // Act
      const outcome = await Promise.race([flushed, stuckAfter(3_000)]);

      // Assess
      expect(outcome).toBe('flushed');
      expect((await first).count + (await second).count).toBe(10);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('result batcher', () => {
  it('cuts batches that stay under the IoT Core message limit and the schema maximum', async () => {
    // Prepare
    const outbox = await Outbox.open(await tempDir());
    const batcher = new ResultBatcher(outbox, 'm', () => undefined, { maxResults: 2_000 });
    const long = 'x'.repeat(100); // long labels push batches by size, not count

    // Act
    batcher.add(1, results(0, 3_000, long), 3_000);
    await batcher.flush();

    // Assess
    const sizes: number[] = [];
    let total = 0;
    for (let batch = outbox.take(); batch; batch = outbox.take()) {
      sizes.push((await outbox.readResults(batch)).length);
      total += batch.count;
      expect(batch.count).toBeLessThanOrEqual(2_000);
    }
    expect(total).toBe(3_000);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    expect(outbox.csvNext).toBe(3_000);
  });

  it('gives every batch it cuts the CSV position right after its own last result', async () => {
    // Prepare
    const outbox = await Outbox.open(await tempDir());
    const batcher = new ResultBatcher(outbox, 'm', () => undefined, { maxResults: 100 });

    // Act: one add spanning three batches, as a fast CSV chunk does.
    batcher.add(1, results(0, 250), 250);
    await batcher.flush();

    // Assess: each stored batch resumes exactly after itself, so deleting it once acked can
    // never make a restart produce its readings again.
    const resumeAt: [string, number | undefined][] = [];
    for (let batch = outbox.take(); batch; batch = outbox.take()) {
      const ids = await resultsOf(outbox, batch);
      resumeAt.push([ids.at(-1)?.id ?? '', batch.csvNext]);
    }
    expect(resumeAt).toEqual([
      ['t:99', 100],
      ['t:199', 200],
      ['t:249', 250],
    ]);
  });

  it('cuts by the exact UTF-8 size, multi-byte labels included, and keeps every result', async () => {
    // Prepare
    const outbox = await Outbox.open(await tempDir());
    const batcher = new ResultBatcher(outbox, 'm', () => undefined, { maxResults: 2_000 });
    const wide = 'ü'.repeat(200); // 400 bytes, 200 characters

    // Act: chunks of different sizes, as the sources add them
    for (let from = 0; from < 1_000; from += 7)
      batcher.add(1, results(from, Math.min(7, 1_000 - from), wide));
    await batcher.flush();

    // Assess
    const ids: string[] = [];
    const sizes: number[] = [];
    for (let batch = outbox.take(); batch; batch = outbox.take()) {
      sizes.push((await outbox.readResults(batch)).length);
      ids.push(...(await resultsOf(outbox, batch)).map((r) => r.id));
    }
    expect(ids).toEqual(results(0, 1_000).map((r) => r.id));
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    // Full batches are cut no earlier than they must be: the next result would not fit.
    const perResult = Buffer.byteLength(JSON.stringify(results(100, 1, wide)[0])) + 1;
    for (const size of sizes.slice(0, -1)) expect(size).toBeGreaterThan(MAX_BATCH_BYTES - perResult - 1);
  });
});

describe('durable writes', () => {
  it('writes the pieces one after the other, empty ones and an empty file included', async () => {
    // Prepare
    const dir = await tempDir();
    const pieces = [Buffer.from('{"a":'), new Uint8Array(0), Buffer.from('"ü"'), Buffer.from('}')];

    // Act
    await writeFileDurable(join(dir, 'pieces.json'), pieces);
    await writeFileDurable(join(dir, 'empty'), []);
    await writeFileDurable(join(dir, 'text'), 'plain');

    // Assess
    expect(JSON.parse(await readFile(join(dir, 'pieces.json'), 'utf8'))).toEqual({ a: 'ü' });
    expect(await readFile(join(dir, 'empty'), 'utf8')).toBe('');
    expect(await readFile(join(dir, 'text'), 'utf8')).toBe('plain');
  });

  it('reports a write that cannot happen', async () => {
    await expect(writeFileDurable(join(await tempDir(), 'missing', 'x'), 'x')).rejects.toThrow(/ENOENT/);
  });
});

describe('nothing stored is removed unread', () => {
  const quarantineOf = async (dir: string) => readdir(join(dir, QUARANTINE_DIR)).catch(() => [] as string[]);

  it('moves a directory standing in place of a segment file to quarantine, and numbers new files past it', async () => {
    // Prepare
    const dir = await tempDir();
    await mkdir(join(dir, segmentFileName(5)));
    await writeFile(join(dir, segmentFileName(5), 'inside'), 'kept');
    const messages: string[] = [];

    // Act
    const outbox = await Outbox.open(dir, { onError: (m) => messages.push(m) });
    await outbox.append({ model: 'm', version: 1, results: results(0, 2), csvNext: 2 });

    // Assess
    expect(outbox.depth).toBe(1);
    expect(outbox.take()?.seq).toBeGreaterThan(5);
    expect(outbox.quarantined).toBe(1);
    const [moved] = await quarantineOf(dir);
    expect(await readFile(join(dir, QUARANTINE_DIR, moved as string, 'inside'), 'utf8')).toBe('kept');
    expect(messages.join('\n')).toMatch(/000000000005\.json quarantined .*it cannot be read \(EISDIR/);
  });

  it('keeps a copy of a segment with a truncated line and still sends its readable batches', async () => {
    // Prepare: two batches in one file (one group commit), the second cut short by a crash of the disk.
    const dir = await tempDir();
    const log = new BatchLog(dir, 0);
    await Promise.all([
      log.append({ model: 'm', version: 1, results: results(0, 3), csvNext: 3 }),
      log.append({ model: 'm', version: 1, results: results(3, 3), csvNext: 6 }),
    ]);
    const [name] = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    const original = await readFile(join(dir, name as string));
    expect(original.toString().trim().split('\n')).toHaveLength(2);
    await writeFile(join(dir, name as string), original.subarray(0, original.length - 20));

    // Act
    const outbox = await Outbox.open(dir);
    const batch = outbox.take();
    const sent = await resultsOf(outbox, batch);
    outbox.ack(batch?.seq ?? -1);
    await outbox.flush();

    // Assess: the readable batch went out; the whole file as it was stays in quarantine.
    expect(sent).toEqual(results(0, 3));
    expect(outbox.depth).toBe(0);
    expect(outbox.dropped).toBe(0);
    expect(outbox.quarantined).toBe(1);
    const [copy] = await quarantineOf(dir);
    expect(await readFile(join(dir, QUARANTINE_DIR, copy as string))).toEqual(
      original.subarray(0, original.length - 20),
    );
    expect(await readdir(dir)).not.toContain(name);
  });

  it('moves a segment file of zeros to quarantine whole', async () => {
    // Prepare
    const dir = await tempDir();
    await writeFile(join(dir, segmentFileName(0)), Buffer.alloc(4096));

    // Act
    const outbox = await Outbox.open(dir);
    const reopened = await Outbox.open(dir);

    // Assess
    expect(outbox.depth).toBe(0);
    expect(outbox.quarantined).toBe(1);
    expect(reopened.quarantined).toBe(1);
    const [moved] = await quarantineOf(dir);
    expect(await readFile(join(dir, QUARANTINE_DIR, moved as string))).toEqual(Buffer.alloc(4096));
  });

  it('sets a batch whose file fails at send time aside into quarantine, not dropped', async () => {
    // Prepare
    const dir = await tempDir();
    const outbox = await Outbox.open(dir);
    await outbox.append({ model: 'm', version: 1, results: results(0, 4), csvNext: 4 });
    const batch = outbox.take() as StoredBatch;
    await writeFile(join(dir, segmentFileName(batch.file)), 'x');

    // Act
    await expect(outbox.readResults(batch)).rejects.toThrow(/shorter than its index says/);
    outbox.setAside(batch.seq);
    await outbox.flush();

    // Assess
    expect(outbox.depth).toBe(0);
    expect(outbox.dropped).toBe(0);
    expect(outbox.quarantined).toBe(1);
    const [moved] = await quarantineOf(dir);
    expect(await readFile(join(dir, QUARANTINE_DIR, moved as string), 'utf8')).toBe('x');
  });
});

describe('the open batch’s journal (open-batch-journal.ts)', () => {
  /**
   * A batcher whose batches stay open a minute (only the journal makes their results durable),
   * handed `runs` of results one after the other, each waited for until journalled; and the
   * journal file's path.
   */
  async function journalledRuns(dir: string, runs: InferenceResult[][]) {
    let durable = 0;
    const batcher = new ResultBatcher(
      await Outbox.open(dir),
      'm',
      () => undefined,
      { maxAgeMs: 60_000 },
      {
        dir,
        journalled: (_from, to) => {
          durable = to;
        },
        fault: (message) => {
          throw new Error(message);
        },
      },
    );
    let handed = 0;
    for (const run of runs) {
      handed += run.length;
      batcher.add(1, run, handed);
      const deadline = Date.now() + 10_000;
      while (durable < handed && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const [name] = await readdir(join(dir, JOURNAL_DIR));
    return { batcher, journal: join(dir, JOURNAL_DIR, name as string), name: name as string };
  }

  it('recovers a batch that was still open at a crash from its journal, under its id, and resumes past it', async () => {
    // Prepare: two journal writes of one open batch, then a third line torn by the crash.
    const dir = await tempDir();
    const { journal, name } = await journalledRuns(dir, [results(0, 3), results(3, 2)]);
    await writeFile(journal, '{"model":"m","version":1,"n":1,"res', { flag: 'a' });

    // Act: the process is gone with its batch open; the next start opens the outbox.
    const reopened = await Outbox.open(dir);
    const batch = reopened.take();

    // Assess
    expect(await resultsOf(reopened, batch)).toEqual(results(0, 5));
    expect(batch?.batchId).toBe(journalBatchId(name));
    expect(reopened.csvNext).toBe(5);
    expect(reopened.quarantined).toBe(0);
    expect(await readdir(join(dir, JOURNAL_DIR))).toEqual([]);
  });

  it('drops a journal whose batch a segment already holds, so nothing is sent twice', async () => {
    // Prepare: the batch reached its segment; the crash came before its journal was removed.
    const dir = await tempDir();
    const { name } = await journalledRuns(dir, [results(0, 2)]);
    const outbox = await Outbox.open(join(dir, 'elsewhere'));
    await outbox.append({
      batchId: journalBatchId(name),
      model: 'm',
      version: 1,
      results: results(0, 2),
      csvNext: 2,
    });
    await rename(join(dir, 'elsewhere', segmentFileName(0)), join(dir, segmentFileName(0)));

    // Act
    const reopened = await Outbox.open(dir);

    // Assess
    expect(reopened.depth).toBe(1);
    expect(reopened.depthResults).toBe(2);
    expect(await readdir(join(dir, JOURNAL_DIR))).toEqual([]);
  });

  it('keeps a copy of a journal with a corrupt line and sends its readable results', async () => {
    // Prepare
    const dir = await tempDir();
    const { journal } = await journalledRuns(dir, [results(0, 2)]);
    await writeFile(journal, 'not json\n', { flag: 'a' });
    const messages: string[] = [];

    // Act
    const reopened = await Outbox.open(dir, { onError: (m) => messages.push(m) });

    // Assess
    expect(reopened.depthResults).toBe(2);
    expect(reopened.quarantined).toBe(1);
    expect(messages.join('\n')).toMatch(/1 of its lines are corrupt; its 2 readable results are sent/);
  });

  it('removes the journal once the batch is durable in its segment', async () => {
    // Prepare
    const dir = await tempDir();
    const { batcher } = await journalledRuns(dir, [results(0, 4)]);
    const before = await readdir(join(dir, JOURNAL_DIR));

    // Act
    await batcher.flush();

    // Assess
    expect(before).toHaveLength(1);
    expect(await readdir(join(dir, JOURNAL_DIR))).toEqual([]);
    expect((await Outbox.open(dir)).depthResults).toBe(4);
  });
});
