import { describe, expect, it } from 'vitest';
import {
  datasetKeys,
  mqttMatches,
  policyAllows,
  rules,
  THING_VARIABLE,
  thingPolicy,
  topicFilter,
  topicFor,
  topics,
} from '../../shared/topology.ts';

describe('topics', () => {
  it('fills templates and refuses a missing variable', () => {
    expect(topicFor('results', { thing: 'gw-1' })).toBe('edgeloop/things/gw-1/results');
    expect(topicFor('release', { model: 'm' })).toBe('edgeloop/models/m/release');
    expect(() => topicFor('results', { model: 'm' })).toThrow(/needs a value for \{thing\}/);
  });

  it('derives subscription filters that match the topics they came from', () => {
    for (const name of Object.keys(topics) as (keyof typeof topics)[]) {
      const filter = topicFilter(name);
      expect(mqttMatches(filter, topicFor(name, { thing: 't1', model: 'm1' }))).toBe(true);
      expect(mqttMatches(filter, 'other/topic')).toBe(false);
    }
  });

  it('matches MQTT wildcards like a broker', () => {
    expect(mqttMatches('a/#', 'a/b/c')).toBe(true);
    expect(mqttMatches('a/+/c', 'a/b/c')).toBe(true);
    expect(mqttMatches('a/+/c', 'a/b/d')).toBe(false);
    expect(mqttMatches('a/+', 'a/b/c')).toBe(false);
  });
});

describe('rules', () => {
  it('select from the topic filters of the topics they aggregate', () => {
    expect(rules.results.sql).toContain(`FROM '${topicFilter('results')}'`);
    expect(rules.status.sql).toContain(`FROM '${topicFilter('status')}'`);
  });
});

describe('dataset keys', () => {
  it('name the model of a dataset key and ignore everything else', () => {
    expect(datasetKeys.modelOf(datasetKeys.dataset('pumps', 'june.csv'))).toBe('pumps');
    expect(datasetKeys.modelOf(datasetKeys.config('pumps'))).toBeUndefined();
    expect(datasetKeys.modelOf('feedback/pumps/x.csv')).toBeUndefined();
    expect(datasetKeys.modelOf('datasets/Bad Name/x.csv')).toBeUndefined();
  });

  it("give a retrain the base dataset's format, and a folder with its marker for a folder of parts", () => {
    expect(datasetKeys.retrain('pumps', 4, 7, 'datasets/pumps/june.csv')).toBe(
      'datasets/pumps/retrain-v4-7.csv',
    );
    expect(datasetKeys.retrain('pumps', 4, 7, 'datasets/pumps/june.csv.gz')).toBe(
      'datasets/pumps/retrain-v4-7.csv.gz',
    );
    expect(datasetKeys.retrain('pumps', 4, 7, 'datasets/pumps/june.parquet')).toBe(
      'datasets/pumps/retrain-v4-7.parquet',
    );
    const fromParts = datasetKeys.retrain('pumps', 4, 7, datasetKeys.successKey('pumps', 'run-1'));
    expect(fromParts).toBe(datasetKeys.successKey('pumps', 'retrain-v4-7'));
    expect(datasetKeys.kindOf(fromParts)).toEqual({
      model: 'pumps',
      kind: 'parts',
      prefix: datasetKeys.partsFolder('pumps', 'retrain-v4-7'),
    });
  });
});

describe('thing policy', () => {
  it('lets a thing connect as itself and publish only its own topics', () => {
    expect(policyAllows('iot:Connect', 'gw-1', 'gw-1')).toBe(true);
    expect(policyAllows('iot:Connect', 'gw-1', 'gw-2')).toBe(false);
    expect(policyAllows('iot:Publish', 'gw-1', topicFor('results', { thing: 'gw-1' }))).toBe(true);
    expect(policyAllows('iot:Publish', 'gw-1', topicFor('results', { thing: 'gw-2' }))).toBe(false);
    expect(policyAllows('iot:Publish', 'gw-1', topicFor('release', { model: 'm' }))).toBe(false);
  });

  it('lets a thing read release notices but not subscribe to everything', () => {
    expect(policyAllows('iot:Subscribe', 'gw-1', topicFor('release', { model: 'm' }))).toBe(true);
    expect(policyAllows('iot:Subscribe', 'gw-1', '#')).toBe(false);
    expect(policyAllows('iot:Subscribe', 'gw-1', topicFor('results', { thing: 'gw-2' }))).toBe(false);
  });

  it('never grants a wildcard action', () => {
    for (const statement of thingPolicy) expect(statement.action).not.toContain('*');
    expect(thingPolicy.find((s) => s.action === 'iot:Connect')?.patterns).toEqual([THING_VARIABLE]);
  });
});
