/**
 * Stage isolation is "one stage per account and region" (DEPLOY.md): topics, rules and the
 * thing policy carry no stage, so two stages synthesized for one account must not both be
 * deployable there. Each template creates the same account-wide lock parameter, which
 * CloudFormation cannot create twice; everything else that is named per stage differs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCOUNT_STAGE_PARAMETER, deploymentParameter } from '../../shared/topology.ts';
import { type CfnResource, type Synthesized, synthesize } from './synth.ts';

let dev: Synthesized;
let prod: Synthesized;

beforeAll(() => {
  dev = synthesize({ 'edgeloop:stage': 'dev' });
  prod = synthesize({ 'edgeloop:stage': 'prod' });
}, 120_000);

afterAll(() => {
  dev?.dispose();
  prod?.dispose();
});

const ofType = (synth: Synthesized, type: string): CfnResource[] =>
  Object.values(synth.resources).filter((resource) => resource.Type === type);
const parameterNames = (synth: Synthesized) =>
  ofType(synth, 'AWS::SSM::Parameter').map((resource) => resource.Properties?.Name);

describe('one stage per account and region', () => {
  it('synthesizes both stages cleanly (cdk-nag included)', () => {
    expect(dev.synthError).toBeUndefined();
    expect(prod.synthError).toBeUndefined();
  });

  it('creates the same account-wide lock parameter in both, holding each stage: the second stage cannot create it', () => {
    // Act
    const lockOf = (synth: Synthesized) =>
      ofType(synth, 'AWS::SSM::Parameter').filter(
        (resource) => resource.Properties?.Name === ACCOUNT_STAGE_PARAMETER,
      );

    // Assess: a fixed physical name (no overwrite in CloudFormation) and a value per stage.
    expect(lockOf(dev)).toHaveLength(1);
    expect(lockOf(prod)).toHaveLength(1);
    expect(lockOf(dev)[0]?.Properties?.Value).toBe('dev');
    expect(lockOf(prod)[0]?.Properties?.Value).toBe('prod');
  });

  it('shares no other SSM parameter name: the lock is the only collision, on purpose', () => {
    // Act
    const shared = parameterNames(dev).filter((name) => parameterNames(prod).includes(name));

    // Assess
    expect(shared).toEqual([ACCOUNT_STAGE_PARAMETER]);
    expect(parameterNames(dev)).toContain(deploymentParameter('dev'));
    expect(parameterNames(prod)).toContain(deploymentParameter('prod'));
  });
});
