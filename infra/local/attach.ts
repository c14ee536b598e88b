/**
 * For CLI commands that talk to a running local stack (upload, stats, models, device): find
 * it through the endpoints remembered in its data dir and point this process's AWS clients
 * at it, exactly as the stack does for its own handlers.
 */
import { readFileSync } from 'node:fs';
import { resetAwsClients } from '../../shared/aws.ts';
import { DEFAULT_DATA_DIR } from '../../shared/local-data-dir.ts';
import { type Endpoints, readEndpoints } from './endpoints.ts';
import { localEnv, signingKeyPath } from './env.ts';
import { publicKeyPathFor } from './signing-key.ts';

export { DEFAULT_DATA_DIR };

export function attachToLocalStack(dataDir: string = DEFAULT_DATA_DIR): Endpoints {
  const endpoints = readEndpoints(dataDir);
  Object.assign(process.env, localEnv(endpoints, dataDir));
  resetAwsClients();
  return endpoints;
}

/** The public half of the stack's manifest signing key: what a local gateway is provisioned with. */
export function localPublicKeyPem(dataDir: string = DEFAULT_DATA_DIR): string {
  return readFileSync(publicKeyPathFor(signingKeyPath(dataDir)), 'utf8');
}
