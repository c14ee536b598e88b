/**
 * Where a local stack listens, remembered in its data dir so a restart reuses the ports and
 * CLI commands in other processes can find it; plus the lock that says a stack is running.
 */

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { EdgeloopError } from '../../shared/errors.ts';
import { type LocalEndpoints, LocalEndpointsSchema } from '../../shared/local-endpoints.ts';
import { localStackFiles } from '../../shared/topology.ts';

export type Endpoints = LocalEndpoints;

export type ServiceName = 's3' | 'mqtt' | 'dynamodb' | 'iotData' | 'kinesis';
export const HOST = '127.0.0.1';

const ENDPOINTS_FILE = localStackFiles.endpoints;
const LOCK_FILE = 'stack.lock';

export function endpointUrl(service: ServiceName, port: number): string {
  return `${service === 'mqtt' ? 'mqtt' : 'http'}://${HOST}:${port}`;
}

export function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** The endpoints remembered in `dataDir`, or undefined when there are none (or unreadable). */
export function rememberedEndpoints(dataDir: string): Endpoints | undefined {
  const file = join(dataDir, ENDPOINTS_FILE);
  if (!existsSync(file)) return undefined;
  try {
    const parsed = LocalEndpointsSchema.safeParse(JSON.parse(readFileSync(file, 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export function rememberEndpoints(dataDir: string, endpoints: Endpoints): void {
  writeFileSync(join(dataDir, ENDPOINTS_FILE), `${JSON.stringify(endpoints, null, 2)}\n`);
}

/**
 * The endpoints of the local stack running on `dataDir`, for CLI commands in other
 * processes. Throws a user-facing error when no stack is running there.
 */
export function readEndpoints(dataDir: string): Endpoints {
  const endpoints = rememberedEndpoints(dataDir);
  if (!endpoints || lockHolder(dataDir) === undefined) {
    throw new EdgeloopError(`no local stack in ${resolve(dataDir)}: start one with \`edgeloop up\``);
  }
  return endpoints;
}

/** Listens on `port` (0 = any free one) on 127.0.0.1; resolves with the bound port. */
export function listen(server: Server | import('node:http').Server, port: number): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen(port, HOST, () => {
      server.off('error', onError);
      const address = server.address();
      if (!address || typeof address === 'string') reject(new Error('server has no TCP address'));
      else resolvePort(address.port);
    });
  });
}

/** Whether `port` can be bound on 127.0.0.1 right now. */
export async function portIsFree(port: number): Promise<boolean> {
  const probe = createServer();
  try {
    await listen(probe, port);
    return true;
  } catch {
    return false;
  } finally {
    await new Promise((done) => probe.close(done));
  }
}

// ---------------------------------------------------------------------------------------
// Lock: one running stack per data dir (leveldb and the retained-message files are not
// shareable), and the way readEndpoints knows a stack is up.
// ---------------------------------------------------------------------------------------

const heldInThisProcess = new Set<string>();

function lockHolder(dataDir: string): number | undefined {
  const file = join(dataDir, LOCK_FILE);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (pid === process.pid) return heldInThisProcess.has(resolve(dataDir)) ? pid : undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

/** Takes the data dir's lock, or throws naming the process that holds it. */
export function acquireLock(dataDir: string): () => void {
  const file = join(dataDir, LOCK_FILE);
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    throw unusableDataDir(dataDir, error);
  }
  const holder = lockHolder(dataDir);
  if (holder !== undefined) {
    throw new EdgeloopError(
      `a local stack is already running on ${resolve(dataDir)} (pid ${holder}): stop it, or pass another --data-dir`,
    );
  }
  try {
    writeFileSync(file, `${process.pid}\n`);
  } catch (error) {
    throw unusableDataDir(dataDir, error);
  }
  heldInThisProcess.add(resolve(dataDir));
  return () => {
    heldInThisProcess.delete(resolve(dataDir));
    rmSync(file, { force: true });
  };
}

function unusableDataDir(dataDir: string, cause: unknown): EdgeloopError {
  const reason = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
  return new EdgeloopError(
    `cannot use ${resolve(dataDir)} as the data dir (${reason}): pass a writable --data-dir`,
    {
      cause,
    },
  );
}
