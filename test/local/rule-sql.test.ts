import { describe, expect, it } from 'vitest';
import { evaluateRule, parseRuleSql, parseSubstitution } from '../../infra/local/rule-sql.ts';
import { RuleEventSchema } from '../../shared/schemas.ts';
import { rules, streams, topicFilter, topicFor } from '../../shared/topology.ts';

describe('rule SQL', () => {
  it('parses every topology rule into its FROM filter and SELECT list', () => {
    // Prepare / Act
    const parsed = parseRuleSql(rules.results.sql);

    // Assess
    expect(parsed.from).toBe(topicFilter('results'));
    expect(parsed.select.map((item) => item.alias)).toEqual(['payload', 'topic', 'thing', 'receivedAt']);
    expect(parseRuleSql(rules.status.sql).from).toBe(topicFilter('status'));
  });

  it('evaluates the results rule into the event shape the aggregator parses', () => {
    // Prepare
    const rule = parseRuleSql(rules.results.sql);
    const topic = topicFor('results', { thing: 'gw-7' });
    const payload = Buffer.from('{"not":"validated here"');

    // Act
    const event = evaluateRule(rule, { topic, payload, receivedAt: 1_700_000_000_123 });

    // Assess
    expect(RuleEventSchema.parse(event)).toEqual({
      payload: payload.toString('base64'),
      topic,
      thing: 'gw-7',
      receivedAt: 1_700_000_000_123,
    });
  });

  it('leaves out an attribute whose topic(n) is past the last level, as IoT does', () => {
    // Prepare
    const rule = parseRuleSql("SELECT topic(9) AS deep, topic(1) AS first FROM 'a/#'");

    // Act
    const event = evaluateRule(rule, { topic: 'a/b', payload: Buffer.alloc(0), receivedAt: 1 });

    // Assess
    expect(event).toEqual({ first: 'a' });
  });

  it('accepts lower-case keywords and spacing variations', () => {
    // Act
    const rule = parseRuleSql("select encode( * , 'base64' ) as p,timestamp() as t from 'x/+'");

    // Assess
    expect(rule.from).toBe('x/+');
    expect(evaluateRule(rule, { topic: 'x/y', payload: Buffer.from([1, 2]), receivedAt: 5 })).toEqual({
      p: 'AQI=',
      t: 5,
    });
  });

  it.each([
    ["SELECT * FROM 'a/b'", /'\*' needs the form <expression> AS <name>/],
    ["SELECT * AS whole FROM 'a/b'", /unsupported expression '\*'/],
    ["SELECT topic() AS t FROM 'a/b' WHERE x = 1", /expected SELECT/],
    ["SELECT clientid() AS c FROM 'a/b'", /unsupported expression 'clientid\(\)'/],
    ["SELECT encode(*, 'hex') AS p FROM 'a/b'", /unsupported expression/],
    ["SELECT topic() FROM 'a/b'", /needs the form <expression> AS <name>/],
    ["SELECT topic(0) AS t FROM 'a/b'", /counts levels from 1/],
    ["SELECT topic() AS t, timestamp() AS t FROM 'a/b'", /duplicate alias 't'/],
    ['SELECT topic() AS t FROM a/b', /expected SELECT/],
  ])('rejects %s instead of guessing', (sql, reason) => {
    // Act / Assess
    expect(() => parseRuleSql(sql)).toThrow(reason);
  });

  it("evaluates the stream's partition key template to the thing of the topic", () => {
    // Prepare
    const key = parseSubstitution(streams.results.partitionKey);
    const input = { topic: topicFor('results', { thing: 'gw-9' }), payload: new Uint8Array(), receivedAt: 1 };

    // Act / Assess
    expect(key(input)).toBe('gw-9');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an IoT substitution template.
    expect(parseSubstitution('k-${topic(9)}-x')(input)).toBe('k--x');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an IoT substitution template.
    expect(() => parseSubstitution('${clientid()}')).toThrow(/unsupported expression 'clientid\(\)'/);
  });
});
