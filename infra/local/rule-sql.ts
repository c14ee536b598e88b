/**
 * The subset of AWS IoT rule SQL the local rule router understands, parsed from the same
 * text the CDK stack deploys (rules in shared/topology.ts). Supported, and nothing else:
 *
 *   SELECT <expr> AS <name>[, ...] FROM '<topic filter>'
 *   <expr> := encode(*, 'base64') | topic() | topic(<n>) | timestamp()
 *
 * Anything else (a WHERE clause, `SELECT *`, other functions) throws, so a rule that the
 * router would silently get wrong cannot be added without extending this module. Action
 * substitution templates (`${topic(3)}` as a Kinesis partition key) take the same expressions.
 */

export type SelectExpression =
  | { kind: 'payloadBase64' }
  | { kind: 'topic'; level?: number }
  | { kind: 'timestamp' };

export interface SelectItem {
  expression: SelectExpression;
  alias: string;
}

export interface ParsedRule {
  select: SelectItem[];
  /** The MQTT topic filter from the FROM clause. */
  from: string;
}

/** What the rule sees of one MQTT message. */
export interface RuleInput {
  topic: string;
  payload: Uint8Array;
  /** Epoch milliseconds when the broker received the message. */
  receivedAt: number;
}

export class RuleSqlError extends Error {
  constructor(message: string, sql: string) {
    super(`${message} in rule SQL: ${sql}`);
    this.name = 'RuleSqlError';
  }
}

const STATEMENT = /^\s*SELECT\s+(.+?)\s+FROM\s+'([^']+)'\s*$/is;
const ITEM = /^(.+?)\s+AS\s+([A-Za-z_][A-Za-z0-9_]*)$/is;
const ENCODE_BASE64 = /^encode\(\s*\*\s*,\s*'base64'\s*\)$/i;
const TOPIC = /^topic\(\s*(\d*)\s*\)$/i;
const TIMESTAMP = /^timestamp\(\s*\)$/i;

export function parseRuleSql(sql: string): ParsedRule {
  const statement = STATEMENT.exec(sql);
  if (!statement)
    throw new RuleSqlError("expected SELECT <list> FROM '<topic filter>' and nothing else", sql);
  const [, list = '', from = ''] = statement;
  const select = splitTopLevel(list, sql).map((item) => parseItem(item, sql));
  const aliases = new Set<string>();
  for (const { alias } of select) {
    if (aliases.has(alias)) throw new RuleSqlError(`duplicate alias '${alias}'`, sql);
    aliases.add(alias);
  }
  return { select, from };
}

function splitTopLevel(list: string, sql: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let quoted = false;
  let current = '';
  for (const char of list) {
    if (char === "'") quoted = !quoted;
    if (!quoted && char === '(') depth++;
    if (!quoted && char === ')') depth--;
    if (depth < 0) throw new RuleSqlError('unbalanced parentheses', sql);
    if (char === ',' && depth === 0 && !quoted) {
      items.push(current.trim());
      current = '';
    } else {
      current += char;
    }
  }
  if (depth !== 0 || quoted) throw new RuleSqlError('unbalanced parentheses or quotes', sql);
  items.push(current.trim());
  return items;
}

function parseItem(item: string, sql: string): SelectItem {
  const match = ITEM.exec(item);
  if (!match) throw new RuleSqlError(`'${item}' needs the form <expression> AS <name>`, sql);
  const [, raw = '', alias = ''] = match;
  return { expression: parseExpression(raw.trim(), sql), alias };
}

function parseExpression(raw: string, sql: string): SelectExpression {
  if (ENCODE_BASE64.test(raw)) return { kind: 'payloadBase64' };
  if (TIMESTAMP.test(raw)) return { kind: 'timestamp' };
  const topic = TOPIC.exec(raw);
  if (topic) {
    if (!topic[1]) return { kind: 'topic' };
    const level = Number(topic[1]);
    if (level < 1) throw new RuleSqlError(`topic(n) counts levels from 1, got ${level}`, sql);
    return { kind: 'topic', level };
  }
  throw new RuleSqlError(
    `unsupported expression '${raw}' (supported: encode(*, 'base64'), topic(), topic(n), timestamp())`,
    sql,
  );
}

/**
 * Applies the SELECT list to one message. As in AWS IoT, an expression that evaluates to
 * Undefined (topic(n) past the last level) leaves its attribute out of the result.
 */
export function evaluateRule(rule: ParsedRule, input: RuleInput): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const { expression, alias } of rule.select) {
    const value = evaluate(expression, input);
    if (value !== undefined) out[alias] = value;
  }
  return out;
}

function evaluate(expression: SelectExpression, input: RuleInput): string | number | undefined {
  switch (expression.kind) {
    case 'payloadBase64':
      return Buffer.from(input.payload).toString('base64');
    case 'timestamp':
      return input.receivedAt;
    case 'topic':
      return expression.level === undefined ? input.topic : input.topic.split('/')[expression.level - 1];
  }
}

const SUBSTITUTION = /\$\{([^}]*)\}/g;

/**
 * Checks an action's substitution template (e.g. a Kinesis partition key `${topic(3)}`) and
 * returns what it evaluates to for one message; an Undefined expression becomes '' as in IoT.
 */
export function parseSubstitution(template: string): (input: RuleInput) => string {
  const expressions = [...template.matchAll(SUBSTITUTION)].map((match) =>
    parseExpression((match[1] ?? '').trim(), template),
  );
  return (input) => {
    let i = 0;
    return template.replace(SUBSTITUTION, () => {
      const expression = expressions[i++] as SelectExpression;
      return String(evaluate(expression, input) ?? '');
    });
  };
}
