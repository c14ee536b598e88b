import { describe, expect, it } from 'vitest';
import { LABELS, makeResults, ruleEvent } from '../../bench/support/aggregation-fixtures.ts';
import { cellFromItem, cellUpdate } from '../../functions/aggregation/aggregate-item.ts';
import {
  emptyCell,
  type KeyedCell,
  mergeCells,
  preAggregate,
  summarizeCell,
} from '../../shared/aggregation/aggregate.ts';
import {
  checkResults,
  decodeBatchEnvelope,
  decodeJsonPayload,
  decodeRuleEvent,
} from '../../shared/aggregation/decode.ts';
import { aggregateKeys } from '../../shared/topology.ts';

const b64 = (text: string | Uint8Array) => Buffer.from(text).toString('base64');

describe('decoding what the IoT rule delivers', () => {
  it.each([
    ['truncated JSON', b64('{"batchId": "abc'), /not valid JSON/],
    ['random bytes', b64(Uint8Array.from([0xff, 0xfe, 0x00, 0x80, 0xc3])), /not UTF-8/],
    ['an empty payload', '', /empty/],
    ['text that is not base64', 'this is not base64!', /not base64/],
  ])('gives a reason for %s', (_name, payload, reason) => {
    // Act
    const decoded = decodeJsonPayload(payload);

    // Assess
    expect(decoded).toEqual({ ok: false, reason: expect.stringMatching(reason) });
  });

  it.each([
    ['null', null, /\(root\)/],
    ['wrong types', { batchId: 1, model: 'm', version: '1', sentAt: 1, results: [{}] }, /batchId.*version/],
    [
      'an overflowing number',
      JSON.parse('{"batchId":"12345678","model":"m","version":1e999,"sentAt":1,"results":[1]}'),
      /version/,
    ],
    ['no results', { batchId: '12345678', model: 'm', version: 1, sentAt: 1, results: [] }, /results/],
  ])('rejects a batch envelope with %s', (_name, value, reason) => {
    expect(decodeBatchEnvelope(value)).toEqual({ ok: false, reason: expect.stringMatching(reason) });
  });

  it('rejects a rule event whose thing is not a valid thing name', () => {
    expect(decodeRuleEvent({ ...ruleEvent('ok', '{}', 1), thing: 'a/b' })).toMatchObject({ ok: false });
  });

  it('keeps the good results of a batch and names each bad one by index', () => {
    // Prepare
    const good = makeResults(3, { seed: 1, startTs: 1_000_000, idPrefix: 'x' });
    const raw = [
      good[0],
      { ...good[1], confidence: Number.POSITIVE_INFINITY },
      null,
      { ...good[2], label: 'not-a-class' },
      { ...good[2], ts: 1_000_000 + 2 * 86_400_000 },
      good[2],
      good[2],
    ];

    // Act
    const checked = checkResults(raw, { receivedAt: 1_000_000, labels: LABELS });

    // Assess
    expect(checked.results).toEqual([good[0], good[2]]);
    expect(checked.repeatedIds).toBe(1);
    expect(checked.rejected.map((bad) => bad.index)).toEqual([1, 2, 3, 4]);
    expect(checked.rejected.map((bad) => bad.reason)).toEqual([
      expect.stringMatching(/^results\.1: confidence/),
      expect.stringMatching(/^results\.2: \(root\)/),
      expect.stringMatching(/^results\.3: label 'not-a-class' is not a class/),
      expect.stringMatching(/^results\.4: ts .* ahead/),
    ]);
  });
});

describe('pre-aggregation', () => {
  it('makes one thing-level and one model-level cell per minute, together holding every result', () => {
    // Prepare: 200 results 500 ms apart span two or three minutes.
    const results = makeResults(200, {
      seed: 2,
      startTs: Date.UTC(2026, 0, 1, 12, 0, 30),
      idPrefix: 'p',
    }).map((result, i) => ({ ...result, ts: Date.UTC(2026, 0, 1, 12, 0, 30) + i * 500 }));

    // Act
    const cells = preAggregate({ model: 'm', version: 3, thing: 'gw', results, lowConfidence: 0.6 });

    // Assess
    const minutes = [...new Set(results.map((result) => aggregateKeys.minute(result.ts)))];
    expect(cells.map((keyed) => `${keyed.key.level} ${keyed.key.pk} ${keyed.key.sk}`)).toEqual(
      minutes.flatMap((minute) => [`thing thing#m#gw ${minute}#v3`, `model model#m ${minute}#v3`]),
    );
    const total = cells
      .filter((keyed) => keyed.key.level === 'model')
      .reduce((sum, keyed) => mergeCells(sum, keyed.cell), emptyCell());
    expect(total.count).toBe(200);
    expect(total.lowConfidence).toBe(results.filter((result) => (result.confidence ?? 0) < 0.6).length);
  });

  it('round-trips a cell through the item attributes one UpdateItem adds', () => {
    // Prepare
    const results = makeResults(50, { seed: 4, startTs: 1_000_000, idPrefix: 'q', truthEvery: 2 });
    const [keyed] = preAggregate({ model: 'm', version: 1, thing: 'gw', results, lowConfidence: 0.5 });
    if (!keyed) throw new Error('no cell');

    // Act
    const item = storedItem(keyed);

    // Assess
    expect(cellFromItem(item)).toEqual(keyed.cell);
    expect(summarizeCell(cellFromItem(item)).inferences).toBe(50);
  });

  it('stores a regression cell (values, errors, value histogram) and reads it back whole', () => {
    const results = Array.from({ length: 30 }, (_, i) => ({
      id: `r${i}`,
      ts: 1_000_000 + i,
      value: -3 + i * 0.7,
      latencyMs: 2,
      ...(i % 3 === 0 ? { truth: String(i * 0.7) } : {}),
    }));
    const [keyed] = preAggregate({ model: 'm', version: 1, thing: 'gw', results, lowConfidence: 0.5 });
    if (!keyed) throw new Error('no cell');
    const read = cellFromItem(storedItem(keyed));
    expect(read).toEqual(keyed.cell);
    expect(summarizeCell(read).liveRmse).toBeCloseTo(3, 9);
    expect(summarizeCell(read).valueP50).not.toBeNull();
  });
});

/** The item DynamoDB holds after the cell's ADD expression on a fresh item. */
function storedItem(keyed: KeyedCell): Record<string, unknown> {
  const update = cellUpdate('t', keyed.key, keyed.cell, 'tag');
  const item: Record<string, unknown> = {};
  for (const pair of (update.UpdateExpression ?? '').replace(/^ADD /, '').split(' SET ')[0]?.split(', ') ??
    []) {
    const [name, value] = pair.split(' ');
    item[update.ExpressionAttributeNames?.[name ?? ''] ?? ''] =
      update.ExpressionAttributeValues?.[value ?? ''];
  }
  return item;
}
