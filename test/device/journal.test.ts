import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../device/sources/live/journal.ts';
import { ReceivedQueue } from '../../device/sources/live/received.ts';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-journal-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('the received journal', () => {
  it('gives back, after a restart, what was acknowledged after the resume position, in order', () => {
    // Prepare
    const dir = tempDir();
    const { journal } = Journal.open<string>(dir, () => 0);
    for (let i = 0; i < 5; i++) journal.append(`m${i}`, i === 2 ? 3 : 1, 1000 + i);
    journal.close();

    // Act: results are durable up to position 2 (m0, m1); m2 spans positions 2..4.
    const reopened = Journal.open<string>(dir, () => 2);

    // Assess
    expect(reopened.pending.map((r) => [r.message, r.position, r.span])).toEqual([
      ['m2', 2, 3],
      ['m3', 5, 1],
      ['m4', 6, 1],
    ]);
    expect(reopened.journal.position).toBe(7);
  });

  it('ignores a torn last line (its message was never acknowledged)', () => {
    // Prepare
    const dir = tempDir();
    const { journal } = Journal.open<string>(dir, () => 0);
    journal.append('whole', 1, 1);
    journal.close();
    const [file] = readdirSync(dir);
    appendFileSync(join(dir, file as string), '{"p":1,"n":1,"a":2,"m":"tor');

    // Act
    const reopened = Journal.open<string>(dir, () => 0);

    // Assess
    expect(reopened.pending.map((r) => r.message)).toEqual(['whole']);
    expect(reopened.journal.position).toBe(1);
  });

  it('rolls to a new segment past 4 MB and deletes segments wholly before the resume position', () => {
    // Prepare: about 6 MB of messages, written a turn's worth at a time.
    const dir = tempDir();
    let durable = 0;
    const { journal } = Journal.open<string>(dir, () => durable);
    const big = 'x'.repeat(2_000);
    for (let i = 0; i < 3_000; i++) {
      journal.append(big, 1, i);
      if (i % 100 === 99) journal.flush();
    }
    journal.close();
    const segments = readdirSync(dir).sort();

    // Act: every message is answered; the next open prunes what the resume position passed.
    durable = 3_000;
    const reopened = Journal.open<string>(dir, () => durable);

    // Assess
    expect(segments.length).toBe(2);
    expect(readdirSync(dir)).toEqual([segments[1]]);
    expect(reopened.pending).toEqual([]);
    expect(reopened.journal.position).toBe(3_000);
  });

  it('starts at the resume position when that is ahead of the journal (a new journal, or another source before)', () => {
    const { journal } = Journal.open<string>(tempDir(), () => 40_000);
    expect(journal.append('x', 1, 1).position).toBe(40_000);
  });
});

describe('the received queue', () => {
  it('holds a pausable source at its capacity and lets it on once readings are taken', async () => {
    // Prepare
    const queue = new ReceivedQueue(2, 'hold');
    const entry = (position: number) => ({
      position,
      span: 1,
      arrivedAt: 0,
      arrivedPerf: 0,
      readings: [{ values: { a: position } }],
    });
    queue.add(entry(0));
    queue.add(entry(1));
    let room = false;
    const waiting = queue.room().then(() => {
      room = true;
    });

    // Act
    await Promise.resolve();
    const before = room;
    const taken = queue.take(1);
    await waiting;

    // Assess
    expect(before).toBe(false);
    expect(taken.map((e) => e.position)).toEqual([0]);
    expect(room).toBe(true);
  });

  it('drops the oldest readings of a source that cannot pause, and counts them', () => {
    const queue = new ReceivedQueue(3, 'drop-oldest');
    for (let i = 0; i < 5; i++)
      queue.add({ position: i, span: 1, arrivedAt: 0, arrivedPerf: 0, readings: [{ values: { a: i } }] });
    expect(queue.dropped).toBe(2);
    expect(queue.take(10).map((e) => e.position)).toEqual([2, 3, 4]);
  });
});
