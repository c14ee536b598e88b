import { EventEmitter } from 'node:events';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { MqttLink } from '../../device/platform/connection.ts';
import { Outbox, QUARANTINE_DIR } from '../../device/results/outbox.ts';
import { Publisher } from '../../device/results/publisher.ts';
import { removeTempDirs, tempDir, until } from './helpers.ts';

afterAll(removeTempDirs);
afterEach(() => {
  vi.useRealTimers();
});

/** A link that acknowledges every publish at once and records when each was sent. */
function fakeLink(now: () => number) {
  const sentAt: number[] = [];
  const link = Object.assign(new EventEmitter(), {
    connected: true,
    connect: async () => undefined,
    subscribe: async () => undefined,
    disconnect: async () => undefined,
    publish: async () => {
      sentAt.push(now());
    },
  }) as MqttLink;
  return { link, sentAt };
}

describe('publisher pacing', () => {
  it('never sends more than 80 result batches in any one-second window (IoT Core allows 100/s)', async () => {
    // Prepare
    const outbox = await Outbox.open(await tempDir());
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        outbox.append({
          model: 'm',
          version: 1,
          results: [{ id: `t:${i}`, ts: 1, label: 'a', confidence: 1, latencyMs: 0 }],
        }),
      ),
    );
    // Batches are read back from disk before each send: real I/O, which fake time does not
    // move, so each step waits for the reads it started.
    const reads = new Set<Promise<unknown>>();
    const readResults = outbox.readResults.bind(outbox);
    outbox.readResults = (batch) => {
      const read = readResults(batch);
      reads.add(read);
      void read.finally(() => reads.delete(read));
      return read;
    };
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const { link, sentAt } = fakeLink(() => Date.now());
    const publisher = new Publisher(outbox, link, 'topic');

    // Act: three seconds of (fake) time
    publisher.start();
    for (let step = 0; step < 60; step++) {
      await vi.advanceTimersByTimeAsync(50);
      while (reads.size > 0) await Promise.allSettled([...reads]);
    }
    await publisher.stop();

    // Assess
    const busiest = Math.max(
      ...sentAt.map((start) => sentAt.filter((t) => t >= start && t < start + 1_000).length),
    );
    expect(busiest).toBeLessThanOrEqual(80);
    expect(sentAt.length).toBeGreaterThanOrEqual(200);
  });
});

/** An outbox with two one-result batches, each in a segment file of its own; the first file's name. */
async function twoSegments() {
  const dir = await tempDir();
  const outbox = await Outbox.open(dir);
  for (const i of [0, 1])
    await outbox.append({
      model: 'm',
      version: 1,
      results: [{ id: `t:${i}`, ts: 1, label: 'a', confidence: 1, latencyMs: 0 }],
    });
  const [first] = (await readdir(dir)).filter((name) => name.endsWith('.json')).sort();
  return { dir, outbox, first };
}

/** Publishes until the outbox is empty after one batch went out; the publisher's error messages. */
async function publishUntilEmpty(outbox: Outbox): Promise<string[]> {
  const { link, sentAt } = fakeLink(() => Date.now());
  const publisher = new Publisher(outbox, link, 'topic');
  const errors: string[] = [];
  publisher.on('error', (message: string) => errors.push(message));
  publisher.start();
  await until(() => sentAt.length === 1 && outbox.depth === 0, 5_000, 'the second batch sent');
  await publisher.stop();
  return errors;
}

describe('publisher and unreadable batches', () => {
  it('drops a batch whose file is gone, counts it and says why, and goes on with the rest', async () => {
    // Prepare: two batches in two segment files; the first file is lost
    const { dir, outbox, first: lost } = await twoSegments();
    await rm(join(dir, lost ?? 'none'));

    // Act
    const errors = await publishUntilEmpty(outbox);

    // Assess
    expect(outbox.dropped).toBe(1);
    expect(errors).toEqual([expect.stringMatching(/is unreadable and was dropped: ENOENT/)]);
  });

  it('sets a batch whose file fails to read aside into quarantine, not dropped, and goes on', async () => {
    // Prepare: two batches in two segment files; the first is damaged (shorter than its index)
    const { dir, outbox, first: damaged } = await twoSegments();
    await writeFile(join(dir, damaged ?? 'none'), '{');

    // Act
    const errors = await publishUntilEmpty(outbox);
    await outbox.flush();

    // Assess
    expect(outbox.dropped).toBe(0);
    expect(outbox.quarantined).toBe(1);
    expect(await readdir(join(dir, QUARANTINE_DIR))).toEqual([expect.stringContaining(damaged ?? 'none')]);
    expect(errors).toEqual([expect.stringMatching(/is unreadable and was set aside in quarantine: /)]);
  });
});
