import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { listen, portOf } from '../../infra/local/endpoints.ts';
import { startLocalStack } from '../../infra/local/stack.ts';
import { envVars } from '../../shared/topology.ts';

describe('local stack lifecycle', () => {
  let dataDir: string;

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'edgeloop-lifecycle-'));
  });

  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('moves to a free port when a remembered one is taken, and remembers the new one', async () => {
    // Prepare
    const first = await startLocalStack({ dataDir });
    const taken = portOf(first.endpoints.s3);
    await first.stop();
    const squatter = createServer();
    await listen(squatter, taken);
    const logged: string[] = [];

    // Act
    const second = await startLocalStack({ dataDir, log: (line) => logged.push(line) });
    const remembered = JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8'));
    await second.stop();
    await new Promise((done) => squatter.close(done));

    // Assess
    expect(portOf(second.endpoints.s3)).not.toBe(taken);
    expect(second.endpoints.mqtt).toBe(first.endpoints.mqtt);
    expect(remembered.s3).toBe(second.endpoints.s3);
    expect(logged).toContain(
      `s3: port ${taken} is taken now; using a free port (CLI commands read the new one)`,
    );
  });

  it('releases everything it started when a start fails half-way, so the next start works', async () => {
    // Prepare: a file where the key directory must go makes the start fail after the servers are up.
    writeFileSync(join(dataDir, 'keys'), 'not a directory');
    const envBefore = process.env[envVars.registryTable];

    // Act
    const failure = await startLocalStack({ dataDir }).catch((error: Error) => error);
    const lockLeft = existsSync(join(dataDir, 'stack.lock'));
    rmSync(join(dataDir, 'keys'));
    const retry = await startLocalStack({ dataDir });
    await retry.stop();

    // Assess
    expect(failure).toBeInstanceOf(Error);
    expect(lockLeft).toBe(false);
    expect(process.env[envVars.registryTable]).toBe(envBefore);
    expect(retry.endpoints).toEqual(JSON.parse(readFileSync(join(dataDir, 'endpoints.json'), 'utf8')));
  });

  it('restores the process environment when it stops', async () => {
    // Prepare
    process.env.AWS_REGION = 'eu-west-3';
    const stack = await startLocalStack({ dataDir });
    const regionWhileRunning = process.env.AWS_REGION;

    // Act
    await stack.stop();

    // Assess
    expect(regionWhileRunning).toBe('us-east-1');
    expect(process.env.AWS_REGION).toBe('eu-west-3');
    expect(process.env.AWS_ENDPOINT_URL_S3).toBeUndefined();
    delete process.env.AWS_REGION;
  });
});
