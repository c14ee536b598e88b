/**
 * The events store against the real local stack (dynalite): a gateway's open and closed
 * messages for one event keep one item, a late or replayed open never reopens a closed event,
 * each event is counted once, a bad message is set aside with its reason, and `edgeloop
 * events` lists what is stored.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ruleEvent } from '../../bench/support/aggregation-fixtures.ts';
import { runCli } from '../../bench/support/cli.ts';
import { startTestStack } from '../../bench/support/local-stack.ts';
import { readEvents } from '../../functions/events/queries.ts';
import { type EventChange, type EventItem, recordEventMessage } from '../../functions/events/record.ts';
import type { LocalStack } from '../../infra/local/stack.ts';
import { dynamoClient } from '../../shared/aws.ts';
import { setEmfSink } from '../../shared/emf-sink.ts';
import { EdgeloopMetrics } from '../../shared/metrics.ts';
import type { AnomalyEventMessage } from '../../shared/schemas.ts';
import { EVENTS_METRICS_SERVICE, metricNames, tables, topicFor } from '../../shared/topology.ts';

let stack: LocalStack;
const emf: string[] = [];
const announced: { id: string; change: EventChange; state: string }[] = [];

beforeAll(async () => {
  stack = await startTestStack({ logLevel: 'ERROR' });
  const collector = setEmfSink((line) => {
    emf.push(line);
    collector?.(line);
  });
});
afterAll(async () => stack?.stop());

const deps = () => ({
  ddb: dynamoClient(),
  tables: { events: tables.events.localName, errors: tables.errors.localName },
  metrics: new EdgeloopMetrics(EVENTS_METRICS_SERVICE),
  logger: new Logger({ logLevel: 'ERROR' }),
  announce: async (event: EventItem, change: EventChange) => {
    announced.push({ id: event.eventId, change, state: event.state });
  },
});

const START = Date.parse('2026-12-07T10:00:00Z');

function message(overrides: Partial<AnomalyEventMessage> = {}): AnomalyEventMessage {
  return {
    eventId: `pump-7@${START}`,
    model: 'pumps',
    version: 1,
    series: 'pump-7',
    state: 'open',
    start: START,
    end: START + 180_000,
    peakScore: 12.5,
    threshold: 3.1,
    channels: [{ name: 'pressure', share: 0.8 }],
    results: 3,
    sentAt: START + 181_000,
    ...overrides,
  };
}

const eventRule = (thing: string, body: unknown, at = Date.now()) => ({
  ...ruleEvent(thing, typeof body === 'string' ? body : JSON.stringify(body), at),
  topic: topicFor('events', { thing }),
});

const counted = () =>
  emf
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line[metricNames.anomalyEvents] !== undefined);

describe('the events store', () => {
  it('keeps one item per event: open, then closed; a replayed or late open changes nothing after the close', async () => {
    // Act
    const outcomes = [
      await recordEventMessage(eventRule('gw-1', message()), deps()),
      await recordEventMessage(eventRule('gw-1', message({ sentAt: START + 182_000 })), deps()), // replayed after a restart
      await recordEventMessage(
        eventRule('gw-1', message({ state: 'closed', end: START + 600_000, peakScore: 40, results: 9 })),
        deps(),
      ),
      await recordEventMessage(eventRule('gw-1', message({ sentAt: START + 900_000 })), deps()), // late open
    ];
    const [stored] = await readEvents(
      { ddb: dynamoClient(), tables: { events: tables.events.localName } },
      { model: 'pumps', sinceMs: START - 1, limit: 10 },
    );

    // Assess
    expect(outcomes.map((o) => o.status)).toEqual(['opened', 'updated', 'closed', 'stale']);
    expect(stored).toMatchObject({
      thing: 'gw-1',
      series: 'pump-7',
      state: 'closed',
      start: START,
      end: START + 600_000,
      peakScore: 40,
      results: 9,
    });
    // Counted once, per model and fleet-wide (the series the alarm watches).
    const lines = counted();
    expect(lines).toHaveLength(2);
    expect(lines.map((line) => line.model ?? 'fleet').sort()).toEqual(['fleet', 'pumps']);
    expect(announced.filter((a) => a.id === message().eventId)).toEqual([
      { id: message().eventId, change: 'opened', state: 'open' },
      { id: message().eventId, change: 'closed', state: 'closed' },
    ]);
  });

  it('keeps the same series of two gateways apart, and lists events newest first with edgeloop events', async () => {
    // Act
    await recordEventMessage(
      eventRule('gw-2', message({ start: START + 60_000, eventId: 'pump-7@x' })),
      deps(),
    );
    const json = await runCli(['events', '--since', '30d', '--data-dir', stack.dataDir, '--json']);
    const text = await runCli(['events', '--model', 'pumps', '--since', '30d', '--data-dir', stack.dataDir]);

    // Assess
    expect(json.code).toBe(0);
    const listed = (JSON.parse(json.stdout) as { events: EventItem[] }).events;
    expect(listed.map((e) => [e.thing, e.state])).toEqual([
      ['gw-2', 'open'],
      ['gw-1', 'closed'],
    ]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^2 anomaly events started since /);
    expect(text.stdout).toMatch(
      /gw-1 \/ pump-7\s+closed\s+9 results, peak 40 \(threshold 3\.1\)\s+pressure 80%/,
    );
  });

  it('sets a bad message aside with its reason and stores nothing', async () => {
    // Act
    const outcomes = [
      await recordEventMessage(eventRule('gw-3', message({ end: START - 1 })), deps()),
      await recordEventMessage(eventRule('gw-3', { ...message(), state: 'maybe' }), deps()),
      await recordEventMessage(eventRule('gw-3', 'not json'), deps()),
    ];
    const errors = await runCli([
      'stats',
      '--errors',
      '--since',
      '1h',
      '--data-dir',
      stack.dataDir,
      '--json',
    ]);

    // Assess
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(outcomes[0]).toMatchObject({ reason: expect.stringMatching(/end .* is before start/) });
    expect(outcomes[1]).toMatchObject({ reason: expect.stringMatching(/invalid anomaly event: state/) });
    const reasons = (JSON.parse(errors.stdout) as { errors: { latest: { thing: string }[] } }).errors.latest;
    expect(reasons.filter((e) => e.thing === 'gw-3')).toHaveLength(3);
    const stored = await readEvents(
      { ddb: dynamoClient(), tables: { events: tables.events.localName } },
      { sinceMs: 0, limit: 100 },
    );
    expect(stored.filter((e) => e.thing === 'gw-3')).toEqual([]);
  });
});
