import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { parseDuration, statsSourceFor } from '../../infra/cli/commands/stats.ts';
import { UsageError } from '../../shared/cli/command.ts';
import { EdgeloopError } from '../../shared/errors.ts';
import { deploymentParameter, envVars, tables } from '../../shared/topology.ts';

describe('where stats and fleet read from', () => {
  it('derives the AWS table names from --stage and the models bucket from the deployment document', async () => {
    // Prepare
    const ssm = mockClient(SSMClient);
    ssm.on(GetParameterCommand, { Name: deploymentParameter('prod') }).resolves({
      Parameter: {
        Value: JSON.stringify({
          stage: 'prod',
          region: 'eu-west-1',
          thingPolicyName: 'p',
          roleAlias: 'r',
          modelsBucket: 'edgeloop-prod-modelsbucket-abc',
          datasetsBucket: 'd',
          signingKeyArn: 'arn:aws:kms:eu-west-1:1:key/k',
        }),
      },
    });

    // Act
    const source = await statsSourceFor({ aws: true, stage: 'prod' }, {});
    ssm.restore();

    // Assess
    expect(source.tables).toEqual({
      aggregates: `${tables.aggregates.localName}-prod`,
      fleet: `${tables.fleet.localName}-prod`,
      errors: `${tables.errors.localName}-prod`,
      events: `${tables.events.localName}-prod`,
    });
    expect(source.manifests).toBeDefined();
    expect(ssm.commandCalls(GetParameterCommand)).toHaveLength(1);
  });

  it('prefers the table names given in the environment (stack outputs)', async () => {
    // Act
    const source = await statsSourceFor(
      { aws: true },
      {
        [envVars.aggregatesTable]: 'Agg-123',
        [envVars.fleetTable]: 'Fleet-9',
        [envVars.errorsTable]: 'Err-7',
      },
    );

    // Assess
    expect(source.tables).toEqual({ aggregates: 'Agg-123', fleet: 'Fleet-9', errors: 'Err-7' });
  });

  it('says how to name the tables when --aws has neither env nor --stage', async () => {
    await expect(statsSourceFor({ aws: true }, {})).rejects.toThrow(EdgeloopError);
    await expect(statsSourceFor({ aws: true }, {})).rejects.toThrow(/EDGELOOP_AGGREGATES_TABLE.*--stage/);
  });

  it('rejects --stage without --aws as bad usage', async () => {
    await expect(statsSourceFor({ stage: 'prod' }, {})).rejects.toThrow(UsageError);
  });

  it('reads durations in seconds, minutes, hours and days', () => {
    expect(['30s', '15m', '2h', '1d', '0.5h'].map((text) => parseDuration(text))).toEqual([
      30_000, 900_000, 7_200_000, 86_400_000, 1_800_000,
    ]);
    expect(() => parseDuration('0m')).toThrow(UsageError);
    expect(() => parseDuration('15 minutes')).toThrow(/--since takes a duration/);
  });
});
