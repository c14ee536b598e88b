/**
 * The Greengrass v2 component recipe of the gateway package, from one source: the CDK stack
 * (infra/aws/constructs/greengrass.ts) fills in each archive's S3 URI and SHA-256 digest.
 * Greengrass unpacks only ZIP artifacts, so the Install step untars the archive into the
 * component's work folder; Run starts the packaged bin/edgeloop-device with node from PATH
 * (the nucleus, Java or lite, does not ship node). SIGTERM on stop: state saved, exit 0.
 */
import type { Arch } from './build.ts';
import { GATEWAY_NODE_FLAGS } from './node-flags.ts';

export const COMPONENT_NAME = 'com.edgeloop.Device';

/** What Greengrass reports as a core device's architecture, per package architecture. */
export const GREENGRASS_ARCH: Record<Arch, string> = { x64: 'amd64', arm64: 'aarch64' };

export interface RecipeArtifact {
  arch: Arch;
  /** s3://bucket/key of the archive. */
  uri: string;
  /** The archive's SHA-256, base64 (the recipe's Digest format). */
  digest: string;
  /** The archive's name on the core device: the last segment of `uri`. */
  fileName: string;
}

/** `stage`: the deployed stage, whose results stream rule a gateway in summary mode publishes to. */
export function deviceRecipe(
  version: string,
  artifacts: readonly RecipeArtifact[],
  stage: string,
): Record<string, unknown> {
  return {
    RecipeFormatVersion: '2020-01-25',
    ComponentName: COMPONENT_NAME,
    ComponentVersion: version,
    ComponentDescription:
      'edgeloop gateway device service: verified model updates with rollback, local inference, batched results over a disk outbox.',
    ComponentPublisher: 'edgeloop',
    ComponentConfiguration: {
      DefaultConfiguration: {
        model: 'sensors',
        httpPort: '8080',
        // Paths on the core device; Greengrass provisions the thing certificate there.
        certFile: '/greengrass/v2/thingCert.crt',
        keyFile: '/greengrass/v2/privKey.key',
        caFile: '/greengrass/v2/rootCA.pem',
        mqttEndpoint: '',
        credentialsEndpoint: '',
        roleAlias: '',
        publicKeyFile: '/etc/edgeloop/manifest-signing-public.pem',
        // 'summary' sends per-minute cells by Basic Ingest to this stage's results stream rule.
        resultsMode: 'detail',
        stage,
        // The readings: a live input's URL or its settings block as JSON text
        // (docs/connect-sensors.md), e.g. mqtt://127.0.0.1:1883?template=plant/{series}/pump.
        source: '',
        // Extra node options, e.g. --max-old-space-size=128 on a gateway short of memory
        // (docs/gateway.md): a lower peak for more latency.
        nodeOptions: '',
      },
    },
    Manifests: artifacts.map((artifact) => ({
      Platform: { os: 'linux', architecture: GREENGRASS_ARCH[artifact.arch] },
      Artifacts: [{ URI: artifact.uri, Digest: artifact.digest, Algorithm: 'SHA-256', Unarchive: 'NONE' }],
      Lifecycle: {
        Setenv: {
          EDGELOOP_DEVICE_THING: '{iot:thingName}',
          EDGELOOP_DEVICE_MODEL: '{configuration:/model}',
          EDGELOOP_DEVICE_STATE_DIR: '{work:path}/state',
          EDGELOOP_DEVICE_MQTT_ENDPOINT: '{configuration:/mqttEndpoint}',
          EDGELOOP_DEVICE_CERT_FILE: '{configuration:/certFile}',
          EDGELOOP_DEVICE_KEY_FILE: '{configuration:/keyFile}',
          EDGELOOP_DEVICE_CA_FILE: '{configuration:/caFile}',
          EDGELOOP_DEVICE_CREDENTIALS_ENDPOINT: '{configuration:/credentialsEndpoint}',
          EDGELOOP_DEVICE_ROLE_ALIAS: '{configuration:/roleAlias}',
          EDGELOOP_DEVICE_PUBLIC_KEY_FILE: '{configuration:/publicKeyFile}',
          EDGELOOP_DEVICE_HTTP_PORT: '{configuration:/httpPort}',
          EDGELOOP_DEVICE_RESULTS_MODE: '{configuration:/resultsMode}',
          EDGELOOP_DEVICE_STAGE: '{configuration:/stage}',
          EDGELOOP_DEVICE_SOURCE: '{configuration:/source}',
          NODE_OPTIONS: '{configuration:/nodeOptions}',
        },
        Install: {
          Script: `rm -rf {work:path}/edgeloop-device && tar -xzf {artifacts:path}/${artifact.fileName} -C {work:path}`,
          RequiresPrivilege: false,
        },
        Run: {
          Script: `node ${GATEWAY_NODE_FLAGS.join(' ')} {work:path}/edgeloop-device/bin/edgeloop-device`,
          RequiresPrivilege: false,
        },
      },
    })),
  };
}
