/**
 * How an AggregateCell lives in tables.aggregates: every field is a flat top-level attribute
 * (DynamoDB ADD works only on top-level numbers and sets), so one UpdateItem adds a whole cell.
 *
 * Each item also carries `b`, a string set of short tags of the batches already added to it.
 * The update is conditional on its batch's tag being absent, which makes every item's update
 * exactly-once on its own, without transactions (dynalite has no TransactWriteItems). Cost:
 * about 14 bytes per batch per item per minute; a model-level minute item stays far below the
 * 400 KB item limit up to roughly 25,000 batches per minute per model version.
 */
import { createHash } from 'node:crypto';
import type { UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { type AggregateCell, type AggregateKey, emptyCell } from '../../shared/aggregation/aggregate.ts';

const scalarAttributes = {
  count: 'n',
  lowConfidence: 'low',
  confidenceSum: 'csum',
  latencySumMs: 'lsum',
  labelled: 'lab',
  correct: 'ok',
  valued: 'nv',
  scored: 'ns',
  valueSum: 'vsum',
  valueSquares: 'vsq',
  errorSquares: 'esq',
  errorAbs: 'eabs',
} as const satisfies Record<
  Exclude<keyof AggregateCell, 'classes' | 'confidenceHist' | 'latencyHist' | 'valueHist'>,
  string
>;

const prefix = { classes: 'c:', confidenceHist: 'ch:', latencyHist: 'lh:', valueHist: 'vh:' } as const;
const BATCH_TAGS = 'b';

/** A 72-bit tag of (thing, batch id): the per-item marker that the batch was added. */
export function batchTag(thing: string, batchId: string): string {
  return createHash('sha256').update(`${thing}\n${batchId}`).digest('base64url').slice(0, 12);
}

/** Names and values of an UpdateExpression under construction. */
export interface ExpressionParts {
  names: Record<string, string>;
  values: Record<string, unknown>;
}

/** `ADD` clauses that add every non-zero field of `cell` to the item's flat attributes. */
export function cellAdds(cell: AggregateCell, parts: ExpressionParts): string[] {
  const adds: string[] = [];
  let i = 0;
  const add = (attribute: string, value: number) => {
    if (value === 0) return;
    i += 1;
    parts.names[`#a${i}`] = attribute;
    parts.values[`:a${i}`] = value;
    adds.push(`#a${i} :a${i}`);
  };
  for (const [field, attribute] of Object.entries(scalarAttributes))
    add(attribute, cell[field as keyof typeof scalarAttributes]);
  for (const [name, count] of Object.entries(cell.classes)) add(`${prefix.classes}${name}`, count);
  for (const [index, count] of Object.entries(cell.confidenceHist))
    add(`${prefix.confidenceHist}${index}`, count);
  for (const [index, count] of Object.entries(cell.latencyHist)) add(`${prefix.latencyHist}${index}`, count);
  for (const [index, count] of Object.entries(cell.valueHist)) add(`${prefix.valueHist}${index}`, count);
  return adds;
}

/** `SET` clauses for the key attributes readers group by (level, model, version, minute, thing). */
export function keySets(key: AggregateKey, parts: ExpressionParts): string[] {
  const sets = ['#level = :level', '#model = :model', '#version = :version', '#minute = :minute'];
  Object.assign(parts.names, {
    '#level': 'level',
    '#model': 'model',
    '#version': 'version',
    '#minute': 'minute',
  });
  Object.assign(parts.values, {
    ':level': key.level,
    ':model': key.model,
    ':version': key.version,
    ':minute': key.minute,
  });
  if (key.thing !== undefined) {
    sets.push('#thing = :thing');
    parts.names['#thing'] = 'thing';
    parts.values[':thing'] = key.thing;
  }
  return sets;
}

/** UpdateItem input that adds `cell` to the item at `key` unless batch `tag` was added already. */
export function cellUpdate(
  table: string,
  key: AggregateKey,
  cell: AggregateCell,
  tag: string,
): UpdateCommandInput {
  const parts: ExpressionParts = { names: {}, values: {} };
  const adds = cellAdds(cell, parts);
  parts.names['#b'] = BATCH_TAGS;
  parts.values[':tags'] = new Set([tag]);
  parts.values[':tag'] = tag;
  adds.push('#b :tags');
  const sets = keySets(key, parts);
  return {
    TableName: table,
    Key: { pk: key.pk, sk: key.sk },
    UpdateExpression: `ADD ${adds.join(', ')} SET ${sets.join(', ')}`,
    ConditionExpression: 'attribute_not_exists(#b) OR NOT contains(#b, :tag)',
    ExpressionAttributeNames: parts.names,
    ExpressionAttributeValues: parts.values,
  };
}

/** The cell stored in an aggregates item (unknown attributes are ignored). */
export function cellFromItem(item: Record<string, unknown>): AggregateCell {
  const cell = emptyCell();
  for (const [field, attribute] of Object.entries(scalarAttributes)) {
    const value = item[attribute];
    if (typeof value === 'number') cell[field as keyof typeof scalarAttributes] = value;
  }
  for (const [attribute, value] of Object.entries(item)) {
    if (typeof value !== 'number') continue;
    if (attribute.startsWith(prefix.classes)) cell.classes[attribute.slice(prefix.classes.length)] = value;
    else if (attribute.startsWith(prefix.confidenceHist))
      cell.confidenceHist[Number(attribute.slice(prefix.confidenceHist.length))] = value;
    else if (attribute.startsWith(prefix.latencyHist))
      cell.latencyHist[Number(attribute.slice(prefix.latencyHist.length))] = value;
    else if (attribute.startsWith(prefix.valueHist))
      cell.valueHist[Number(attribute.slice(prefix.valueHist.length))] = value;
  }
  return cell;
}
