/**
 * The broker's intake is what keeps the local stack from acknowledging publishes nothing
 * routes: a gateway that connects while the stack starts is served only once the rules listen,
 * and one that publishes while it stops is disconnected before they stop (it sends again).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Broker, startBroker } from '../../infra/local/broker.ts';
import { RetainedStore } from '../../infra/local/retained.ts';

describe('local broker intake', () => {
  let dir: string;
  let broker: Broker;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeloop-intake-'));
    broker = await startBroker({ port: 0, retained: new RetainedStore(join(dir, 'retained')) });
  });

  afterEach(async () => {
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = () =>
    mqtt.connect(`mqtt://127.0.0.1:${broker.port}`, {
      clientId: 'gw-intake',
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    });

  it('holds a client that connects before intake opens and serves it once it does', async () => {
    // Prepare
    const client = connect();
    const connected = new Promise<void>((resolve) => client.once('connect', () => resolve()));
    const arrivedEarly = await Promise.race([
      connected.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 300)),
    ]);

    // Act
    broker.openIntake();
    await connected;

    // Assess
    expect(arrivedEarly).toBe(false);
    expect(client.connected).toBe(true);
    await client.endAsync();
  });

  it('disconnects clients and refuses new ones once intake stops', async () => {
    // Prepare
    broker.openIntake();
    const client = connect();
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));

    // Act
    await broker.stopIntake();
    await closed;
    const late = connect();
    const refused = await new Promise<boolean>((resolve) => {
      late.once('connect', () => resolve(false));
      late.once('error', () => resolve(true));
      late.once('close', () => resolve(true));
    });

    // Assess
    expect(client.connected).toBe(false);
    expect(refused).toBe(true);
    late.end(true);
  });
});
