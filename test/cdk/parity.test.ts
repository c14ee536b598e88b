/**
 * Parity: the synthesized template wires what the embedded local stack wires, because both
 * come from shared/topology.ts. Each check holds the template against the local stack's own
 * code (infra/local): the S3 event filter, the rule SQL and topics, the thing policy the
 * local broker enforces, each function's environment variable names, and the tables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsTableName } from '../../infra/aws/constructs/tables.ts';
import { trainingSteps } from '../../infra/aws/constructs/training.ts';
import { renderCfnValue } from '../../infra/aws/nag.ts';
import { handlerEntries } from '../../infra/aws/paths.ts';
import { localEnv } from '../../infra/local/env.ts';
import { handlerFile } from '../../infra/local/invoker.ts';
import { thingPolicyChecks } from '../../infra/local/policy-auth.ts';
import { evaluateRule, parseRuleSql } from '../../infra/local/rule-sql.ts';
import { triggersTraining } from '../../infra/local/s3-events.ts';
import { createTableInput } from '../../infra/local/tables.ts';
import { RuleEventSchema } from '../../shared/schemas.ts';
import {
  awsOnlyEnvOf,
  buckets,
  datasetKeys,
  envVars,
  type FunctionName,
  functions,
  powertoolsEnv,
  rules,
  THING_VARIABLE,
  tables,
  thingPolicy,
  topicFilter,
  topicFor,
} from '../../shared/topology.ts';
import {
  type CfnResource,
  referencedId,
  resourcesOfType,
  type Synthesized,
  synthesize,
  wildcardMatches,
} from './synth.ts';

let synth: Synthesized;

beforeAll(() => {
  synth = synthesize();
});
afterAll(() => synth.dispose());

const envOf = (fn: CfnResource | undefined) =>
  Object.keys(
    (fn?.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {},
  ).sort();
/** In AWS: the variables a function reads everywhere, Powertools', and those it has in AWS only. */
const declaredEnv = (name: FunctionName) => {
  return [...functions[name].env, ...powertoolsEnv, ...awsOnlyEnvOf(name)].map((key) => envVars[key]).sort();
};
const awsOnlyNames = new Set<string>(
  (Object.keys(functions) as FunctionName[]).flatMap((name) => awsOnlyEnvOf(name).map((key) => envVars[key])),
);

interface RulePayload {
  Sql: string;
  Actions: { Lambda: { FunctionArn: unknown } }[];
}
const topicRules = () =>
  resourcesOfType(synth.resources, 'AWS::IoT::TopicRule').map(
    ([, resource]) => resource.Properties?.TopicRulePayload as RulePayload,
  );

describe('S3 -> EventBridge filter', () => {
  const keyFilter = () => {
    const [[, rule] = []] = resourcesOfType(synth.resources, 'AWS::Events::Rule').filter(
      ([, candidate]) => candidate.Properties?.EventPattern !== undefined,
    );
    const pattern = rule?.Properties?.EventPattern as { detail: { object: { key: { wildcard: string }[] } } };
    return pattern.detail.object.key;
  };

  it('is the topology prefix with each dataset ending and the parts marker', () => {
    expect(keyFilter()).toEqual(
      datasetKeys.triggerSuffixes.map((suffix) => ({ wildcard: `${datasetKeys.prefix}*${suffix}` })),
    );
    expect(datasetKeys.triggerSuffixes).toEqual(expect.arrayContaining(['.csv', '.csv.gz', '/_SUCCESS']));
  });

  it('starts training for exactly the keys the local S3 notification does', () => {
    // Prepare
    const filters = keyFilter();
    const keys = [
      datasetKeys.dataset('vibration', 'day-1.csv'),
      datasetKeys.dataset('a-1', 'x.csv'),
      'datasets/nested/deeper/x.csv',
      'datasets/.csv',
      datasetKeys.config('vibration'),
      `${datasetKeys.feedbackPrefix('vibration')}hard.csv`,
      'vibration/v1/model.json',
      'datasets.csv',
      'other/datasets/x.csv',
      'datasets/x.csv.gz',
      'datasets/pumps/june.jsonl.gz',
      'datasets/pumps/run-1/_SUCCESS',
      'datasets/_SUCCESS',
      'datasets/pumps/run-1/part-0000.parquet',
    ];
    const local = (key: string) =>
      triggersTraining({
        eventName: 'ObjectCreated:Put',
        s3: { bucket: { name: buckets.datasets.localName }, object: { key } },
      });

    // Act
    const cloud = keys.map((key) => filters.some((filter) => wildcardMatches(filter.wildcard, key)));

    // Assess
    expect(cloud).toEqual(keys.map(local));
    expect(cloud.filter(Boolean)).toHaveLength(8);
  });
});

describe('IoT topic rules', () => {
  it.each(Object.values(rules))('$ruleName carries the topology SQL and feeds $function', (rule) => {
    // Act
    const match = topicRules().find((payload) => payload.Sql === rule.sql);
    const target = synth.resources[referencedId(match?.Actions[0]?.Lambda.FunctionArn) ?? ''];

    // Assess
    expect(match?.Actions).toHaveLength(1);
    expect(envOf(target)).toEqual(declaredEnv(rule.function));
  });

  it('deploys SQL the local rule router runs, reading the results, status and events topics', () => {
    // Act
    const parsed = topicRules().map((payload) => parseRuleSql(payload.Sql));

    // Assess
    expect(parsed.map((rule) => rule.from).sort()).toEqual(
      [topicFilter('results'), topicFilter('status'), topicFilter('events')].sort(),
    );
    for (const rule of parsed) {
      const output = evaluateRule(rule, {
        topic: topicFor('results', { thing: 'gw-1' }),
        payload: new TextEncoder().encode('{"not":"validated here"}'),
        receivedAt: 1_700_000_000_000,
      });
      expect(RuleEventSchema.parse(output)).toMatchObject({ thing: 'gw-1' });
    }
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

  /** Evaluates the synthesized policy the way IoT Core does, for one thing. */
  const templateAllows = (action: string, thing: string, resource: string) =>
    statements()
      .filter((statement) => statement.Action.includes(action))
      .flatMap((statement) => statement.Resource.map((arn) => patternOf(renderCfnValue(arn))?.[2] ?? ''))
      .some((pattern) => wildcardMatches(pattern.replaceAll(THING_VARIABLE, thing), resource));

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

  it('allows and denies exactly what the local broker does', () => {
    // Prepare: things, and topics that belong to them, to others, or to nobody.
    const things = ['gw-1', 'gw-2'];
    const topics = [
      ...things.flatMap((thing) => [topicFor('results', { thing }), topicFor('status', { thing })]),
      topicFor('release', { model: 'vibration' }),
      topicFilter('release'),
      topicFilter('results'),
      'edgeloop/#',
      '#',
      'edgeloop/things/gw-1/results/extra',
    ];

    // Act / Assess
    for (const thing of things) {
      expect(templateAllows('iot:Connect', thing, thing)).toBe(thingPolicyChecks.connect(thing));
      expect(templateAllows('iot:Connect', thing, 'someone-else')).toBe(false);
      for (const topic of topics) {
        expect([thing, topic, templateAllows('iot:Publish', thing, topic)]).toEqual([
          thing,
          topic,
          thingPolicyChecks.publish(thing, topic),
        ]);
        expect(templateAllows('iot:Subscribe', thing, topic)).toBe(thingPolicyChecks.subscribe(thing, topic));
        expect(templateAllows('iot:Receive', thing, topic)).toBe(thingPolicyChecks.receive(thing, topic));
      }
    }
  });
});

/** Functions an EventBridge schedule invokes (the rollout controller, the status recount). */
const scheduledIds = () =>
  new Set(
    resourcesOfType(synth.resources, 'AWS::Events::Rule')
      .filter(([, rule]) => rule.Properties?.ScheduleExpression !== undefined)
      .flatMap(([, rule]) => (rule.Properties?.Targets ?? []) as { Arn: unknown }[])
      .map((target) => referencedId(target.Arn)),
  );

describe('function environment', () => {
  const expectedEnv = () => {
    const ruleTargets = new Map(
      topicRules().map((payload) => {
        const rule = Object.values(rules).find((candidate) => candidate.sql === payload.Sql);
        return [referencedId(payload.Actions[0]?.Lambda.FunctionArn), rule?.function] as const;
      }),
    );
    return resourcesOfType(synth.resources, 'AWS::Lambda::Function').map(([id, fn]) => {
      // A scheduled function that no topic rule invokes is the rollout controller.
      const name: FunctionName | undefined =
        fn.Properties?.PackageType === 'Image'
          ? 'train'
          : (ruleTargets.get(id) ?? (scheduledIds().has(id) ? 'rolloutController' : undefined));
      return { actual: envOf(fn), expected: name ? declaredEnv(name) : ['(not a topology function)'] };
    });
  };

  it('sets exactly the topology variable names on every function', () => {
    const all = expectedEnv();
    // The training steps, the rollout controller and one aggregator per rule.
    expect(all).toHaveLength(trainingSteps.length + 1 + Object.keys(rules).length);
    for (const { actual, expected } of all) expect(actual).toEqual(expected);
  });

  it('gives the managed train job exactly the train step variable names', () => {
    const [[, job] = []] = resourcesOfType(synth.resources, 'AWS::Batch::JobDefinition');
    const container = job?.Properties?.ContainerProperties as
      | { Environment?: { Name: string }[] }
      | undefined;
    expect((container?.Environment ?? []).map((variable) => variable.Name).sort()).toEqual(
      declaredEnv('train'),
    );
  });

  it('sets only variables the local stack also sets', () => {
    const endpoints = {
      s3: 'http://127.0.0.1:1',
      mqtt: 'mqtt://127.0.0.1:2',
      dynamodb: 'http://127.0.0.1:3',
      iotData: 'http://127.0.0.1:4',
      kinesis: 'http://127.0.0.1:5',
    };
    const local = Object.keys(localEnv(endpoints, '/tmp/edgeloop'));
    for (const { actual } of expectedEnv())
      expect(local).toEqual(expect.arrayContaining(actual.filter((name) => !awsOnlyNames.has(name))));
  });

  it('bundles the handler files the local stack invokes', () => {
    expect(handlerEntries.aggregateResults).toBe(`functions/${handlerFile('aggregateResults')}`);
    expect(handlerEntries.aggregateStatus).toBe(`functions/${handlerFile('aggregateStatus')}`);
    expect(handlerEntries.rolloutController).toBe(`functions/${handlerFile('rolloutController')}`);
  });
});

describe('tables', () => {
  it.each(Object.values(tables))('$id has the local key schema and the stage name', (spec) => {
    synth.template.hasResourceProperties('AWS::DynamoDB::Table', {
      TableName: awsTableName(spec, 'dev'),
      KeySchema: createTableInput(spec).KeySchema,
      AttributeDefinitions: createTableInput(spec).AttributeDefinitions,
      ...('ttlAttribute' in spec
        ? { TimeToLiveSpecification: { AttributeName: spec.ttlAttribute, Enabled: true } }
        : {}),
    });
  });
});
