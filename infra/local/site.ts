/**
 * A machine site for `edgeloop demo --live`: the broker a gateway's sensors publish to
 * (aedes, MQTT 3.1.1, on 127.0.0.1, standing in for the Mosquitto on a real gateway; it is
 * not the local IoT Core broker, which enforces the thing policy) and simulated machines
 * that publish readings to it at a steady rate, one JSON reading per message.
 */
import { createServer, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import type { Reading } from '../../shared/dataset/readings.ts';
import { listen } from './endpoints.ts';

export interface SiteBroker {
  url: string;
  close(): Promise<void>;
}

export async function startSiteBroker(): Promise<SiteBroker> {
  const aedes = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    aedes.handle(socket);
  });
  const port = await listen(server, 0);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

/**
 * Publishes `readings` at `ratePerSec` on `topicOf(reading)` (QoS 1, paced by the clock, not
 * by PUBACKs); resolves once every one was acknowledged.
 */
export async function simulateMachines(
  url: string,
  readings: readonly Reading[],
  ratePerSec: number,
  topicOf: (reading: Reading, index: number) => string,
  clientId: string,
): Promise<void> {
  const client = await mqtt.connectAsync(url, { clientId, protocolVersion: 4, reconnectPeriod: 500 });
  try {
    const start = Date.now();
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < readings.length; i++) {
      const reading = readings[i] as Reading;
      sent.push(client.publishAsync(topicOf(reading, i), JSON.stringify(reading), { qos: 1 }));
      const due = start + ((i + 1) / ratePerSec) * 1000 - Date.now();
      if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
    }
    await Promise.all(sent);
  } finally {
    await client.endAsync();
  }
}
