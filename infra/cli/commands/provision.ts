/**
 * `edgeloop provision THING`: registers a gateway with AWS IoT for a deployed stage. It
 * creates the thing, a key pair and an active certificate, attaches the stage's thing
 * policy and the thing to the certificate, fetches the manifest verification key from KMS,
 * and writes a ready device config next to the credentials. If a step fails after the
 * certificate exists, the certificate (and a thing it created) is removed again.
 */
import { createPublicKey } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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
  DetachThingPrincipalCommand,
  IoTClient,
  UpdateCertificateCommand,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import { GetPublicKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { parseSourceSpec } from '../../../device/sources/sources.ts';
import { defineCommand, modelOption, requiredString, UsageError } from '../../../shared/cli/command.ts';
import { EdgeloopError, errorMessage } from '../../../shared/errors.ts';
import { namedPublicKey } from '../../../shared/manifest.ts';
import { type Deployment, DeploymentSchema, describeZodError, ThingName } from '../../../shared/schemas.ts';
import { deploymentParameter } from '../../../shared/topology.ts';

export interface ProvisionClients {
  iot: IoTClient;
  ssm: SSMClient;
  kms: KMSClient;
}

export interface ProvisionOptions {
  thing: string;
  model: string;
  stage: string;
  /** Directory for the credentials and device.json; must not hold them already. */
  outDir: string;
  /** Where the device keeps its models and outbox on the gateway. */
  stateDir: string;
  /** The device.json source: a CLI spec or a live input's settings block (validated already). */
  source?: string | Record<string, unknown>;
}

/** The files provision writes, by role. */
export const provisionFiles = {
  certificate: 'certificate.pem.crt',
  privateKey: 'private.pem.key',
  publicKey: 'manifest-signing-public.pem',
  config: 'device.json',
} as const;

export interface ProvisionResult {
  thing: string;
  certificateArn: string;
  certificateId: string;
  endpoint: string;
  configFile: string;
  files: Record<keyof typeof provisionFiles, string>;
}

/** A --source for device.json: a live input's URL as its whole settings block, so it can be edited there. */
export function sourceBlock(text: string): string | Record<string, unknown> {
  const spec = parseSourceSpec(text);
  return 'settings' in spec ? { ...spec.settings } : text;
}

export async function readDeployment(ssm: SSMClient, stage: string): Promise<Deployment> {
  const name = deploymentParameter(stage);
  let value: string | undefined;
  try {
    value = (await ssm.send(new GetParameterCommand({ Name: name }))).Parameter?.Value;
  } catch (error) {
    if ((error as { name?: string }).name === 'ParameterNotFound') {
      throw new EdgeloopError(
        `no edgeloop deployment for stage '${stage}' in this account/region (SSM parameter ${name} is missing): deploy it with 'npx cdk deploy -c edgeloop:stage=${stage}', or pass --stage/AWS_REGION for an existing one`,
      );
    }
    throw new EdgeloopError(
      `cannot read SSM parameter ${name}: ${errorMessage(error)} (check AWS_REGION and your AWS credentials)`,
      { cause: error },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(value ?? '');
  } catch {
    throw new EdgeloopError(`SSM parameter ${name} is not JSON: redeploy the stack ('npx cdk deploy')`);
  }
  const parsed = DeploymentSchema.safeParse(json);
  if (!parsed.success) {
    throw new EdgeloopError(
      `SSM parameter ${name} is not an edgeloop deployment: ${describeZodError(parsed.error)}`,
    );
  }
  return parsed.data;
}

async function endpoint(iot: IoTClient, endpointType: string): Promise<string> {
  const address = (await iot.send(new DescribeEndpointCommand({ endpointType }))).endpointAddress;
  if (!address) throw new EdgeloopError(`AWS IoT returned no ${endpointType} endpoint for this region`);
  return address;
}

/**
 * The stage's verification key, named by the key ARN KMS gives (the keyId the signer puts in
 * every signature), so the gateway verifies each signature with the key it names.
 */
async function signingPublicKeyPem(kms: KMSClient, keyId: string): Promise<string> {
  const { PublicKey, KeyId } = await kms.send(new GetPublicKeyCommand({ KeyId: keyId }));
  if (!PublicKey) throw new EdgeloopError(`KMS returned no public key for ${keyId}`);
  const pem = createPublicKey({ key: Buffer.from(PublicKey), format: 'der', type: 'spki' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
  return namedPublicKey(KeyId ?? keyId, pem);
}

/** Awaits a create call; a resource that exists already is what was wanted. */
async function ignoreExisting(call: Promise<unknown>): Promise<void> {
  try {
    await call;
  } catch (error) {
    if ((error as { name?: string }).name !== 'ResourceAlreadyExistsException') throw error;
  }
}

export async function provisionThing(
  clients: ProvisionClients,
  options: ProvisionOptions,
): Promise<ProvisionResult> {
  const { iot } = clients;
  const outDir = resolve(options.outDir);
  const files = Object.fromEntries(
    Object.entries(provisionFiles).map(([role, name]) => [role, join(outDir, name)]),
  ) as ProvisionResult['files'];
  const existing = Object.values(files).filter((file) => existsSync(file));
  if (existing.length > 0) {
    throw new EdgeloopError(
      `${existing.join(', ')} already exist: choose another --out directory (credentials are never overwritten)`,
    );
  }

  const deployment = await readDeployment(clients.ssm, options.stage);
  const [dataEndpoint, credentialsEndpoint, publicKeyPem] = await Promise.all([
    endpoint(iot, 'iot:Data-ATS'),
    endpoint(iot, 'iot:CredentialProvider'),
    signingPublicKeyPem(clients.kms, deployment.signingKeyArn),
  ]);

  // `wx`: the check above and the writes below are not atomic; a file that appears in
  // between (another provision run, a mistake) fails the write instead of being replaced.
  const written: string[] = [];
  const writeNew = (file: string, data: string, mode: number) => {
    writeFileSync(file, data, { mode, flag: 'wx' });
    written.push(file);
  };

  // The thing's type is its model: the device role lets a gateway write hard examples only
  // under feedback/<its thing type>/<its thing name>/ (credentials-iot policy variables).
  await ignoreExisting(
    iot.send(
      new CreateThingTypeCommand({
        thingTypeName: options.model,
        thingTypeProperties: { thingTypeDescription: `edgeloop gateways running model ${options.model}` },
      }),
    ),
  );
  let createdThing = false;
  try {
    await iot.send(new CreateThingCommand({ thingName: options.thing, thingTypeName: options.model }));
    createdThing = true;
  } catch (error) {
    if ((error as { name?: string }).name !== 'ResourceAlreadyExistsException') throw error;
    await iot.send(new UpdateThingCommand({ thingName: options.thing, thingTypeName: options.model }));
  }

  const cert = await iot
    .send(new CreateKeysAndCertificateCommand({ setAsActive: true }))
    .catch(async (error) => {
      if (createdThing)
        await iot.send(new DeleteThingCommand({ thingName: options.thing })).catch(() => undefined);
      throw error;
    });
  const { certificateArn, certificateId, certificatePem } = cert;
  const privateKey = cert.keyPair?.PrivateKey;
  if (!certificateArn || !certificateId || !certificatePem || !privateKey) {
    throw new EdgeloopError('AWS IoT returned an incomplete certificate: try again');
  }

  const made: Created = {
    thing: options.thing,
    certificateArn,
    certificateId,
    createdThing,
    policyAttached: false,
    thingAttached: false,
  };
  try {
    await iot.send(
      new AttachPolicyCommand({ policyName: deployment.thingPolicyName, target: certificateArn }),
    );
    made.policyAttached = true;
    await iot.send(new AttachThingPrincipalCommand({ thingName: options.thing, principal: certificateArn }));
    made.thingAttached = true;

    mkdirSync(outDir, { recursive: true, mode: 0o700 });
    writeNew(files.certificate, certificatePem, 0o644);
    writeNew(files.privateKey, privateKey, 0o600);
    writeNew(files.publicKey, publicKeyPem, 0o644);
    const config = {
      thing: options.thing,
      model: options.model,
      stateDir: options.stateDir,
      mqttEndpoint: dataEndpoint,
      region: deployment.region,
      certFile: files.certificate,
      keyFile: files.privateKey,
      publicKeyFile: files.publicKey,
      credentialsEndpoint,
      roleAlias: deployment.roleAlias,
      // The stage names the results stream rule a gateway reaches by Basic Ingest (resultsRoute).
      stage: deployment.stage,
      // Hard examples go to the datasets bucket's feedback prefix (the device role may write there).
      feedbackBucket: deployment.datasetsBucket,
      ...(options.source !== undefined ? { source: options.source } : {}),
    };
    writeNew(files.config, `${JSON.stringify(config, null, 2)}\n`, 0o644);
  } catch (error) {
    await undo(iot, made, deployment.thingPolicyName);
    // Only what this run wrote: a file that appeared meanwhile is someone else's.
    for (const file of written) rmSync(file, { force: true });
    throw new EdgeloopError(
      `provisioning ${options.thing} failed and was rolled back: ${errorMessage(error)}`,
      {
        cause: error,
      },
    );
  }
  return {
    thing: options.thing,
    certificateArn,
    certificateId,
    endpoint: dataEndpoint,
    configFile: files.config,
    files,
  };
}

interface Created {
  thing: string;
  certificateArn: string;
  certificateId: string;
  createdThing: boolean;
  policyAttached: boolean;
  thingAttached: boolean;
}

/** Best-effort removal of what a failed provision created, newest first. */
async function undo(iot: IoTClient, made: Created, policyName: string): Promise<void> {
  const steps = [
    ...(made.thingAttached
      ? [
          () =>
            iot.send(
              new DetachThingPrincipalCommand({ thingName: made.thing, principal: made.certificateArn }),
            ),
        ]
      : []),
    ...(made.policyAttached
      ? [() => iot.send(new DetachPolicyCommand({ policyName, target: made.certificateArn }))]
      : []),
    () =>
      iot.send(new UpdateCertificateCommand({ certificateId: made.certificateId, newStatus: 'INACTIVE' })),
    () => iot.send(new DeleteCertificateCommand({ certificateId: made.certificateId })),
    ...(made.createdThing ? [() => iot.send(new DeleteThingCommand({ thingName: made.thing }))] : []),
  ];
  for (const step of steps) {
    try {
      await step();
    } catch {
      // Keep undoing the rest; what remains is named in the error the caller reports.
    }
  }
}

export const provisionCommand = defineCommand({
  name: 'provision',
  summary: 'register a gateway with AWS IoT and write its credentials and device config',
  usage: 'edgeloop provision THING --model NAME [--out DIR] [--stage S] [--state-dir DIR] [--source SPEC]',
  examples: [
    'edgeloop provision gw-001 --model vibration',
    "edgeloop provision gw-003 --model vibration --source 'mqtt://127.0.0.1:1883?template=plant/{series}/pump'",
    'edgeloop provision gw-002 --model vibration --stage prod --out /etc/edgeloop',
  ],
  positionals: [1, 1],
  options: {
    model: { type: 'string', description: 'the model this gateway runs', valueName: 'NAME' },
    out: {
      type: 'string',
      description: 'directory for the certificate, key and device.json',
      valueName: 'DIR',
    },
    stage: {
      type: 'string',
      description: 'deployed stage (cdk context edgeloop:stage)',
      default: 'dev',
      valueName: 'S',
    },
    'state-dir': {
      type: 'string',
      description: 'state directory on the gateway',
      default: '/var/lib/edgeloop',
      valueName: 'DIR',
    },
    source: {
      type: 'string',
      description:
        "the gateway's readings: a live input's URL (written out as its settings block), csv:FILE or stdin",
      valueName: 'SPEC',
    },
  },
  async run({ values, positionals, out }) {
    const thing = ThingName.safeParse(positionals[0]);
    if (!thing.success)
      throw new UsageError(`bad thing name '${positionals[0]}': ${describeZodError(thing.error)}`);
    const model = modelOption(values, true);
    const stage = requiredString(values, 'stage');
    const options: ProvisionOptions = {
      thing: thing.data,
      model,
      stage,
      outDir: typeof values.out === 'string' ? values.out : `edgeloop-${thing.data}`,
      stateDir: requiredString(values, 'state-dir'),
      ...(typeof values.source === 'string' ? { source: sourceBlock(values.source) } : {}),
    };
    const clients = { iot: new IoTClient({}), ssm: new SSMClient({}), kms: new KMSClient({}) };
    try {
      const result = await provisionThing(clients, options);
      if (values.json) {
        out(JSON.stringify(result));
      } else if (!values.quiet) {
        out(
          `provisioned ${result.thing} (certificate ${result.certificateId.slice(0, 12)}...) for stage ${stage}`,
        );
        out(`  endpoint: ${result.endpoint}`);
        out(`  files:    ${Object.values(result.files).join('\n            ')}`);
        out(`run it:    edgeloop device --config ${result.configFile}`);
      } else {
        out(result.configFile);
      }
      return 0;
    } finally {
      clients.iot.destroy();
      clients.ssm.destroy();
      clients.kms.destroy();
    }
  },
});
