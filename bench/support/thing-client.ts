/**
 * Test peer: a thing connecting with the device SDK's MQTT 3.1.1 connection (the one that
 * works against aedes), wrapped so tests can await what they need with a bound.
 */
import { io, mqtt } from 'aws-iot-device-sdk-v2';

export interface ThingClient {
  connection: mqtt.MqttClientConnection;
  messages: { topic: string; payload: string; retain: boolean }[];
  /** Resolves when the broker drops the connection (or rejects after `ms`). */
  interrupted(ms?: number): Promise<void>;
  close(): Promise<void>;
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export async function connectThing(mqttEndpoint: string, clientId: string): Promise<ThingClient> {
  const url = new URL(mqttEndpoint);
  const connection = new mqtt.MqttClient().new_connection({
    client_id: clientId,
    host_name: url.hostname,
    port: Number(url.port),
    clean_session: true,
    keep_alive: 30,
    socket_options: new io.SocketOptions(),
  });
  const messages: ThingClient['messages'] = [];
  connection.on('message', (topic, payload, _dup, _qos, retain) => {
    messages.push({ topic, payload: Buffer.from(payload).toString(), retain });
  });
  const interrupted = new Promise<void>((resolve) => connection.once('interrupt', () => resolve()));
  try {
    await withTimeout(connection.connect(), 5000, `${clientId} to connect`);
  } catch (error) {
    await connection.disconnect().catch(() => {});
    throw error;
  }
  return {
    connection,
    messages,
    interrupted: (ms = 5000) => withTimeout(interrupted, ms, `${clientId} to be disconnected`),
    close: () => withTimeout(connection.disconnect(), 5000, `${clientId} to disconnect`).catch(() => {}),
  };
}

/** Polls `check` until it returns true (or fails after `ms`). */
export async function eventually(check: () => boolean, ms = 5000, what = 'a condition'): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
