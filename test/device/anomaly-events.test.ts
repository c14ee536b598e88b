/**
 * The gateway's anomaly event log against the real local stack (its broker, the events rule
 * and the events store): an event opened while the gateway is offline is durable, survives a
 * restart and is closed by the next run under the same id; a message file that cannot be read
 * is set aside in quarantine and counted, never removed; once connected, the messages go out
 * in order and the store holds the event closed.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack } from '../../bench/support/local-stack.ts';
import { createMqttLink, type MqttLink } from '../../device/platform/connection.ts';
import { AnomalyEventLog } from '../../device/results/anomaly-events.ts';
import { readEvents } from '../../functions/events/queries.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import type { AnomalyEvent } from '../../shared/anomaly.ts';
import { dynamoClient } from '../../shared/aws.ts';
import type { InferenceResult } from '../../shared/schemas.ts';
import { tables } from '../../shared/topology.ts';

let stack: LocalStack;
let dir: string;
const links: MqttLink[] = [];

beforeAll(async () => {
  stack = await startTestStack({ logLevel: 'ERROR' });
  dir = await mkdtemp(join(tmpdir(), 'edgeloop-events-'));
});
afterAll(async () => {
  await Promise.all(links.map((link) => link.disconnect()));
  await stack?.stop();
  await rm(dir, { recursive: true, force: true });
});

const MANIFEST = {
  version: 3,
  anomaly: { threshold: 1, eventRule: { k: 2, n: 3, m: 2 }, residualScale: [1] },
};
const T0 = Date.parse('2026-12-07T08:00:00Z');

/** Results of series `pump-1`, one a minute from `from`, with these scores (over 1 is anomalous). */
const results = (from: number, scores: number[]): InferenceResult[] =>
  scores.map((score, i) => ({
    id: `gw-ev:${from + i}`,
    ts: Date.now(),
    score,
    threshold: 1,
    anomaly: score > 1,
    channels: score > 1 ? [{ name: 'pressure', share: 1 }] : [],
    series: 'pump-1',
    time: T0 + (from + i) * 60_000,
    latencyMs: 0.1,
  }));

const link = () => {
  const created = createMqttLink({ clientId: 'gw-ev', endpoint: stack.endpoints.mqtt, log: () => undefined });
  links.push(created);
  return created;
};
const open = (mqtt: MqttLink, log: string[] = []) =>
  AnomalyEventLog.open({ dir, thing: 'gw-ev', model: 'pumps', link: mqtt, log: (line) => log.push(line) });

describe("the gateway's anomaly event log", () => {
  it('keeps an event opened offline across a restart, closes it under the same id, and delivers both in order', async () => {
    // Act: the first run opens an event while offline, then stops.
    const offline = link();
    const first = await open(offline);
    first.setModel(MANIFEST);
    first.results(3, results(0, [0.2, 5, 6, 7]));
    const afterFirst = first.status();
    await first.stop();
    const pending = await readdir(join(dir, 'pending'));
    const kept = JSON.parse(await readFile(join(dir, 'open.json'), 'utf8')) as AnomalyEvent[];
    // A message file the disk mangled.
    await writeFile(join(dir, 'pending', '7.json'), '{"eventId": "pump-1@');

    // Act: the next run continues it and two clear results close it; then the link comes up.
    const log: string[] = [];
    const online = link();
    const second = await open(online, log);
    second.setModel(MANIFEST);
    const resumed = second.status();
    second.results(3, results(4, [9, 0.1, 0.1]));
    await online.connect();
    second.kick();
    const drained = await second.drained();
    const stored = await waitForStored('closed');

    // Assess
    expect(afterFirst).toEqual({ open: 1, opened: 1, closed: 0, unsent: 1 });
    expect(pending).toEqual(['0.json']);
    expect(kept.map((e) => [e.id, e.start])).toEqual([[`pump-1@${T0 + 60_000}`, T0 + 60_000]]);
    expect(resumed.open).toBe(1);
    expect(drained).toBe(true);
    expect(second.status()).toEqual({ open: 0, opened: 0, closed: 1, unsent: 0, quarantined: 1 });
    expect(await readdir(join(dir, 'quarantine'))).toEqual(['7.json']);
    expect(log.some((line) => /7\.json is unreadable/.test(line))).toBe(true);
    expect(await readdir(join(dir, 'pending'))).toEqual([]);
    expect(stored).toMatchObject({
      thing: 'gw-ev',
      series: 'pump-1',
      eventId: `pump-1@${T0 + 60_000}`,
      version: 3,
      start: T0 + 60_000,
      end: T0 + 4 * 60_000,
      peakScore: 9,
      channels: [{ name: 'pressure', share: 1 }],
    });
    // Counted from the result that opened it: two in the first run (kept at stop), one in the second.
    expect(stored.results).toBe(3);
    await second.stop();
  });

  it('ignores results of a version without an event rule (a classifier) and says nothing in the status', async () => {
    // Prepare
    const other = join(dir, 'classifier');
    await mkdir(other);
    const log = await AnomalyEventLog.open({
      dir: other,
      thing: 'gw-c',
      model: 'm',
      link: link(),
      log: () => undefined,
    });

    // Act
    log.setModel({ version: 1 });
    log.results(1, [{ id: 'gw-c:0', ts: 1, label: 'ok', confidence: 0.9, latencyMs: 1 }]);

    // Assess
    expect(log.active).toBe(false);
    await log.stop();
  });
});

async function waitForStored(state: 'open' | 'closed') {
  const source = { ddb: dynamoClient(), tables: { events: tables.events.localName } };
  for (let attempt = 0; attempt < 200; attempt++) {
    await stack.idle();
    const [event] = await readEvents(source, { model: 'pumps', sinceMs: 0, limit: 10 });
    if (event?.state === state) return event;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no ${state} event in the store`);
}
