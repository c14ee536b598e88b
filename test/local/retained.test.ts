import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RetainedStore } from '../../infra/local/retained.ts';

describe('retained message store', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'edgeloop-retained-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reloads what an earlier store wrote, newest message per topic', () => {
    // Prepare
    const before = new RetainedStore(dir);
    before.put('edgeloop/models/a/release', Buffer.from('{"v":1}'), 1, 10);
    before.put('edgeloop/models/a/release', Buffer.from('{"v":2}'), 1, 20);
    before.put('edgeloop/models/b/release', Buffer.from('{"v":7}'), 0, 30);

    // Act
    const after = new RetainedStore(dir);

    // Assess
    expect(after.list().map((message) => [message.topic, message.payload.toString(), message.qos])).toEqual([
      ['edgeloop/models/a/release', '{"v":2}', 1],
      ['edgeloop/models/b/release', '{"v":7}', 0],
    ]);
    expect(after.get('edgeloop/models/a/release')?.lastModifiedTime).toBe(20);
  });

  it('clears a topic on an empty retained payload, on disk too', () => {
    // Prepare
    const store = new RetainedStore(dir);
    store.put('t/1', Buffer.from('x'), 1);

    // Act
    store.put('t/1', Buffer.alloc(0), 1);

    // Assess
    expect(store.get('t/1')).toBeUndefined();
    expect(new RetainedStore(dir).list()).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('skips and reports a file it cannot read instead of failing the start', () => {
    // Prepare
    new RetainedStore(dir).put('t/ok', Buffer.from('fine'), 1);
    writeFileSync(join(dir, 'broken.json'), '{"topic": 3');
    const skipped: string[] = [];

    // Act
    const store = new RetainedStore(dir, (file) => skipped.push(file));

    // Assess
    expect(skipped).toEqual(['broken.json']);
    expect(store.list().map((message) => message.topic)).toEqual(['t/ok']);
  });
});
