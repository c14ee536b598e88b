/**
 * Parity: the synthesized template wires exactly what shared/topology.ts declares, which is
 * also what the embedded local stack is built from (S3 event filter, rule SQL and topics,
 * the thing policy's topic patterns, each function's environment variable names).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCfnValue } from '../../infra/aws/nag.ts';
import {
  datasetKeys,
  envVars,
  type FunctionName,
  functions,
  policyAllows,
  powertoolsEnv,
  rules,
  THING_VARIABLE,
  tables,
  thingPolicy,
  topicFilter,
  topicFor,
} from '../../shared/topology.ts';
import { type CfnResource, referencedId, resourcesOfType, type Synthesized, synthesize } from './synth.ts';

let synth: Synthesized;

beforeAll(() => {
  synth = synthesize();
});
afterAll(() => synth.dispose());

/** EventBridge wildcard semantics: `*` matches any run of characters, `/` included. */
function wildcardMatches(pattern: string, value: string): boolean {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*');
  return new RegExp(`^${escaped}$`).test(value);
}

const envNames = (name: FunctionName) =>
  [...functions[name].env, ...powertoolsEnv].map((key) => envVars[key]).sort();
const envOf = (fn: CfnResource | undefined) =>
  Object.keys(
    (fn?.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {},
  ).sort();

describe('S3 -> EventBridge filter', () => {
  const keyFilter = () => {
    const [[, rule] = []] = resourcesOfType(synth.resources, 'AWS::Events::Rule');
    const pattern = rule?.Properties?.EventPattern as { detail: { object: { key: { wildcard: string }[] } } };
    return pattern.detail.object.key;
  };

  it('is the topology prefix and suffix', () => {
    expect(keyFilter()).toEqual([{ wildcard: `${datasetKeys.prefix}*${datasetKeys.suffix}` }]);
  });

  it('starts training for every key the local stack treats as a dataset, and not for feedback or config', () => {
    // Prepare
    const [filter] = keyFilter();
    const datasets = [datasetKeys.dataset('vibration', 'day-1.csv'), datasetKeys.dataset('a-1', 'x.csv')];
    const others = [
      datasetKeys.config('vibration'),
      `${datasetKeys.feedbackPrefix('vibration')}hard.csv`,
      'vibration/v1/model.json',
    ];

    // Act / Assess
    for (const key of datasets) {
      expect(datasetKeys.modelOf(key)).toBeDefined();
      expect(wildcardMatches(filter?.wildcard ?? '', key)).toBe(true);
    }
    for (const key of others) {
      expect(datasetKeys.modelOf(key)).toBeUndefined();
      expect(wildcardMatches(filter?.wildcard ?? '', key)).toBe(false);
    }
  });
});

describe('IoT topic rules', () => {
  it.each(Object.values(rules))('$ruleName carries the topology SQL and feeds $function', (rule) => {
    // Prepare
    const topicRules = resourcesOfType(synth.resources, 'AWS::IoT::TopicRule').map(
      ([, resource]) =>
        resource.Properties?.TopicRulePayload as {
          Sql: string;
          Actions: { Lambda: { FunctionArn: unknown } }[];
        },
    );

    // Act
    const match = topicRules.find((payload) => payload.Sql === rule.sql);
    const target = synth.resources[referencedId(match?.Actions[0]?.Lambda.FunctionArn) ?? ''];

    // Assess
    expect(match).toBeDefined();
    expect(match?.Actions).toHaveLength(1);
    expect(envOf(target)).toEqual(envNames(rule.function));
  });

  it('selects from the results and status topic filters only', () => {
    const sql = resourcesOfType(synth.resources, 'AWS::IoT::TopicRule').map(
      ([, resource]) => (resource.Properties?.TopicRulePayload as { Sql: string } | undefined)?.Sql ?? '',
    );
    const topicsRead = sql.map((text) => /FROM '([^']+)'/.exec(text)?.[1]).sort();
    expect(topicsRead).toEqual([topicFilter('results'), topicFilter('status')].sort());
  });
});

describe('thing policy', () => {
  const statements = () => {
    const [[, policy] = []] = resourcesOfType(synth.resources, 'AWS::IoT::Policy');
    const document = policy?.Properties?.PolicyDocument as
      | { Statement: { Action: string[]; Resource: unknown[] }[] }
      | undefined;
    return document?.Statement ?? [];
  };
  const patternOf = (arn: string) =>
    /^arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:(\w+)\/(.*)$/.exec(arn);

  it('grants each topology action on exactly the topology patterns', () => {
    for (const expected of thingPolicy) {
      const statement = statements().find((s) => s.Action.includes(expected.action));
      const resources = (statement?.Resource ?? []).map((resource) => patternOf(renderCfnValue(resource)));
      expect(statement?.Action).toEqual([expected.action]);
      expect(resources.map((m) => m?.[1])).toEqual(expected.patterns.map(() => expected.resourceType));
      expect(resources.map((m) => m?.[2])).toEqual(expected.patterns);
    }
  });

  it('adds nothing but the credentials-provider role alias', () => {
    const actions = statements().flatMap((s) => s.Action);
    expect(actions.sort()).toEqual(
      [...thingPolicy.map((s) => s.action), 'iot:AssumeRoleWithCertificate'].sort(),
    );
  });

  it('scopes a thing to its own topics, as the local broker enforces', () => {
    // Prepare: the rendered policy's publish patterns, with the thing variable kept.
    const publish = statements().find((s) => s.Action.includes('iot:Publish'));
    const patterns = (publish?.Resource ?? []).map(
      (resource) => patternOf(renderCfnValue(resource))?.[2] ?? '',
    );

    // Assess: each rendered pattern names the policy variable, and the topology agrees.
    expect(patterns.every((pattern) => pattern.includes(THING_VARIABLE))).toBe(true);
    expect(policyAllows('iot:Publish', 'gw-1', topicFor('results', { thing: 'gw-1' }))).toBe(true);
    expect(policyAllows('iot:Publish', 'gw-1', topicFor('results', { thing: 'gw-2' }))).toBe(false);
  });
});

describe('function environment', () => {
  it('sets exactly the topology variable names on every function', () => {
    // Prepare
    const fns = resourcesOfType(synth.resources, 'AWS::Lambda::Function');
    const ruleTargets = new Map(
      resourcesOfType(synth.resources, 'AWS::IoT::TopicRule').map(([, resource]) => {
        const payload = resource.Properties?.TopicRulePayload as {
          Sql: string;
          Actions: { Lambda: { FunctionArn: unknown } }[];
        };
        const rule = Object.values(rules).find((candidate) => candidate.sql === payload.Sql);
        return [referencedId(payload.Actions[0]?.Lambda.FunctionArn), rule?.function] as const;
      }),
    );

    // Act: every function is either a training step (image) or a rule's aggregator.
    const expected = fns.map(([id, fn]) =>
      fn.Properties?.PackageType === 'Image'
        ? envNames('train')
        : envNames(ruleTargets.get(id) ?? ('unknown' as FunctionName)),
    );

    // Assess
    expect(fns.length).toBe(6 + Object.keys(rules).length);
    fns.forEach(([, fn], index) => {
      expect(envOf(fn)).toEqual(expected[index]);
    });
  });
});

describe('tables', () => {
  it('matches the topology key schema and TTL of every table', () => {
    const synthesized = resourcesOfType(synth.resources, 'AWS::DynamoDB::Table').map(([, table]) => ({
      keys: table.Properties?.KeySchema,
      ttl: (table.Properties?.TimeToLiveSpecification as { AttributeName?: string } | undefined)
        ?.AttributeName,
    }));
    const declared = Object.values(tables).map((spec) => ({
      keys: [
        { AttributeName: spec.partitionKey.name, KeyType: 'HASH' },
        ...('sortKey' in spec ? [{ AttributeName: spec.sortKey.name, KeyType: 'RANGE' }] : []),
      ],
      ttl: 'ttlAttribute' in spec ? spec.ttlAttribute : undefined,
    }));
    expect(synthesized).toEqual(expect.arrayContaining(declared));
    expect(synthesized).toHaveLength(declared.length);
  });
});
