import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreateThingCommand,
  CreateThingTypeCommand,
  DeleteCertificateCommand,
  DeleteThingCommand,
  DescribeEndpointCommand,
  DetachPolicyCommand,
  IoTClient,
  ResourceAlreadyExistsException,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { GetPublicKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { GetParameterCommand, ParameterNotFound, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  configFromFile,
  deviceOptionsFrom,
  resolveConfig as resolveDeviceConfig,
} from '../../device/config.ts';
import { provisionFiles, provisionThing, sourceBlock } from '../../infra/cli/commands/provision.ts';
import { main } from '../../infra/cli/main.ts';
import { EdgeloopError } from '../../shared/errors.ts';
import { pinnedKeys } from '../../shared/manifest.ts';
import type { Deployment } from '../../shared/schemas.ts';
import { deploymentParameter } from '../../shared/topology.ts';

const iot = mockClient(IoTClient);
const ssm = mockClient(SSMClient);
const kms = mockClient(KMSClient);
const clients = () => ({ iot: new IoTClient({}), ssm: new SSMClient({}), kms: new KMSClient({}) });

const deployment: Deployment = {
  stage: 'dev',
  region: 'eu-west-1',
  thingPolicyName: 'Edgeloop-dev-ThingPolicy-ABC',
  roleAlias: 'edgeloop-dev-device',
  modelsBucket: 'edgeloop-dev-models-123',
  datasetsBucket: 'edgeloop-dev-datasets-123',
  signingKeyArn: 'arn:aws:kms:eu-west-1:111122223333:key/abcd',
};
const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
const certificateArn = 'arn:aws:iot:eu-west-1:111122223333:cert/c0ffee';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'edgeloop-provision-'));
  ssm.on(GetParameterCommand, { Name: deploymentParameter('dev') }).resolves({
    Parameter: { Value: JSON.stringify(deployment) },
  });
  ssm
    .on(GetParameterCommand, { Name: deploymentParameter('prod') })
    .rejects(new ParameterNotFound({ message: 'not found', $metadata: {} }));
  iot.on(DescribeEndpointCommand, { endpointType: 'iot:Data-ATS' }).resolves({
    endpointAddress: 'abc123-ats.iot.eu-west-1.amazonaws.com',
  });
  iot.on(DescribeEndpointCommand, { endpointType: 'iot:CredentialProvider' }).resolves({
    endpointAddress: 'xyz.credentials.iot.eu-west-1.amazonaws.com',
  });
  kms.on(GetPublicKeyCommand, { KeyId: deployment.signingKeyArn }).resolves({
    KeyId: deployment.signingKeyArn,
    PublicKey: new Uint8Array(signingKey.export({ type: 'spki', format: 'der' })),
  });
  iot.on(CreateThingTypeCommand).resolves({ thingTypeName: 'vibration' });
  iot.on(CreateThingCommand).resolves({ thingName: 'gw-1' });
  iot.on(UpdateThingCommand).resolves({});
  iot.on(CreateKeysAndCertificateCommand).resolves({
    certificateArn,
    certificateId: 'c0ffee',
    certificatePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
    keyPair: { PrivateKey: '-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n' },
  });
  iot.on(AttachPolicyCommand).resolves({});
  iot.on(AttachThingPrincipalCommand).resolves({});
});

afterEach(() => {
  iot.reset();
  ssm.reset();
  kms.reset();
  rmSync(dir, { recursive: true, force: true });
});

const options = (overrides: Partial<Parameters<typeof provisionThing>[1]> = {}) => ({
  thing: 'gw-1',
  model: 'vibration',
  stage: 'dev',
  outDir: join(dir, 'gw-1'),
  stateDir: '/var/lib/edgeloop',
  ...overrides,
});

describe('provisionThing', () => {
  it('creates the thing and an active certificate, attaches the stage policy, and writes a device config', async () => {
    // Act
    const result = await provisionThing(clients(), options());

    // Assess
    expect(iot.commandCalls(CreateKeysAndCertificateCommand)[0]?.args[0].input).toEqual({
      setAsActive: true,
    });
    // The thing's type is its model: the device role scopes feedback writes by it.
    expect(iot.commandCalls(CreateThingTypeCommand)[0]?.args[0].input).toMatchObject({
      thingTypeName: 'vibration',
    });
    expect(iot.commandCalls(CreateThingCommand)[0]?.args[0].input).toEqual({
      thingName: 'gw-1',
      thingTypeName: 'vibration',
    });
    expect(iot.commandCalls(AttachPolicyCommand)[0]?.args[0].input).toEqual({
      policyName: deployment.thingPolicyName,
      target: certificateArn,
    });
    expect(iot.commandCalls(AttachThingPrincipalCommand)[0]?.args[0].input).toEqual({
      thingName: 'gw-1',
      principal: certificateArn,
    });
    const config = JSON.parse(readFileSync(result.configFile, 'utf8'));
    expect(config).toEqual({
      thing: 'gw-1',
      model: 'vibration',
      stateDir: '/var/lib/edgeloop',
      mqttEndpoint: 'abc123-ats.iot.eu-west-1.amazonaws.com',
      region: 'eu-west-1',
      certFile: join(dir, 'gw-1', provisionFiles.certificate),
      keyFile: join(dir, 'gw-1', provisionFiles.privateKey),
      publicKeyFile: join(dir, 'gw-1', provisionFiles.publicKey),
      credentialsEndpoint: 'xyz.credentials.iot.eu-west-1.amazonaws.com',
      roleAlias: deployment.roleAlias,
      stage: deployment.stage,
      feedbackBucket: deployment.datasetsBucket,
    });
    expect(statSync(config.keyFile).mode & 0o777).toBe(0o600);
    // The device service accepts it as is (its strict schema, endpoint and file checks).
    expect(resolveDeviceConfig(configFromFile(result.configFile))).toMatchObject({
      thing: 'gw-1',
      model: 'vibration',
    });
    // Named by the key ARN KMS gave, the keyId the stage's signatures carry.
    expect(readFileSync(config.publicKeyFile, 'utf8')).toBe(
      `keyId: ${deployment.signingKeyArn}\n${signingKey.export({ type: 'spki', format: 'pem' })}`,
    );
    expect(pinnedKeys(readFileSync(config.publicKeyFile, 'utf8'))).toEqual([
      {
        keyId: deployment.signingKeyArn,
        pem: String(signingKey.export({ type: 'spki', format: 'pem' })).trim(),
      },
    ]);
  });

  it('writes a live input given as a URL out as its settings block, which the device reads back', async () => {
    // Act
    const source = sourceBlock(
      'mqtt://127.0.0.1:1883?template=plant/{series}/pump/{channel}&format=value&channels=temp,rpm',
    );
    const result = await provisionThing(clients(), options({ source }));

    // Assess
    const config = JSON.parse(readFileSync(result.configFile, 'utf8'));
    expect(config.source).toMatchObject({
      kind: 'mqtt',
      url: 'mqtt://127.0.0.1:1883',
      topicTemplate: 'plant/{series}/pump/{channel}',
      format: 'value',
      channels: ['temp', 'rpm'],
      maxInFlight: 1000,
    });
    expect(deviceOptionsFrom(resolveDeviceConfig(configFromFile(result.configFile))).source).toEqual({
      kind: 'mqtt',
      settings: config.source,
    });
    expect(() => sourceBlock('mqtt://127.0.0.1:1883?format=value')).toThrow(/topics/);
  });

  it('reuses an existing thing and thing type, gives the thing its model as type, and leaves it in place', async () => {
    const exists = new ResourceAlreadyExistsException({ message: 'exists', $metadata: {} });
    iot.on(CreateThingTypeCommand).rejects(exists);
    iot.on(CreateThingCommand).rejects(exists);

    const result = await provisionThing(clients(), options());

    expect(result.thing).toBe('gw-1');
    expect(iot.commandCalls(UpdateThingCommand)[0]?.args[0].input).toEqual({
      thingName: 'gw-1',
      thingTypeName: 'vibration',
    });
    expect(iot.commandCalls(DeleteThingCommand)).toHaveLength(0);
  });

  it('says to deploy first when the stage has no deployment, before creating anything', async () => {
    const attempt = provisionThing(clients(), options({ stage: 'prod' }));

    await expect(attempt).rejects.toThrow(EdgeloopError);
    await expect(provisionThing(clients(), options({ stage: 'prod' }))).rejects.toThrow(
      /stage 'prod'.*npx cdk deploy -c edgeloop:stage=prod/,
    );
    expect(iot.commandCalls(CreateThingCommand)).toHaveLength(0);
  });

  it('rolls back the certificate and the new thing when attaching fails', async () => {
    // Prepare
    iot.on(AttachThingPrincipalCommand).rejects(new Error('throttled'));
    iot.on(DetachPolicyCommand).resolves({});
    iot.on(UpdateCertificateCommand).resolves({});
    iot.on(DeleteCertificateCommand).resolves({});
    iot.on(DeleteThingCommand).resolves({});

    // Act
    const attempt = provisionThing(clients(), options());

    // Assess
    await expect(attempt).rejects.toThrow(/gw-1 failed and was rolled back: throttled/);
    expect(iot.commandCalls(UpdateCertificateCommand)[0]?.args[0].input).toEqual({
      certificateId: 'c0ffee',
      newStatus: 'INACTIVE',
    });
    expect(iot.commandCalls(DetachPolicyCommand)[0]?.args[0].input).toEqual({
      policyName: deployment.thingPolicyName,
      target: certificateArn,
    });
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(1);
    expect(iot.commandCalls(DeleteThingCommand)).toHaveLength(1);
    expect(existsSync(join(dir, 'gw-1', provisionFiles.privateKey))).toBe(false);
  });

  it('never overwrites existing credentials', async () => {
    // Prepare
    const outDir = join(dir, 'existing');
    await provisionThing(clients(), options({ outDir }));
    iot.resetHistory();

    // Act / Assess
    await expect(provisionThing(clients(), options({ outDir }))).rejects.toThrow(
      /already exist: choose another --out/,
    );
    expect(iot.commandCalls(CreateKeysAndCertificateCommand)).toHaveLength(0);
  });
});

describe('edgeloop provision', () => {
  it('does not replace a credential file that appears while it runs, and rolls back', async () => {
    // Prepare: another run writes the private key after the existence check passed.
    const outDir = join(dir, 'raced');
    const theirs = '-----BEGIN PRIVATE KEY-----\ntheirs\n-----END PRIVATE KEY-----\n';
    iot.on(AttachThingPrincipalCommand).callsFake(async () => {
      mkdirSync(outDir, { recursive: true });
      writeFileSync(join(outDir, provisionFiles.privateKey), theirs);
      return {};
    });

    // Act
    const attempt = provisionThing(clients(), options({ outDir }));

    // Assess
    await expect(attempt).rejects.toThrow(/failed and was rolled back: EEXIST/);
    expect(readFileSync(join(outDir, provisionFiles.privateKey), 'utf8')).toBe(theirs);
    expect(existsSync(join(outDir, provisionFiles.certificate))).toBe(false);
    expect(iot.commandCalls(DeleteCertificateCommand)).toHaveLength(1);
  });

  it('exits 2 with a reason for a bad thing name or a missing --model', async () => {
    expect(await main(['provision', 'bad:name', '--model', 'vibration'])).toBe(2);
    expect(await main(['provision', 'gw-1'])).toBe(2);
    expect(iot.commandCalls(CreateThingCommand)).toHaveLength(0);
  });
});
