/**
 * The local IoT Core broker: aedes over TCP (MQTT 3.1.1), enforcing the thing policy, with
 * retained messages persisted to the data dir and replayed on start, and IoT Core's message
 * size limit on every client connection (infra/local/packet-limit.ts).
 */

import { createServer, type Socket } from 'node:net';
import { Aedes } from 'aedes';
import { IOT_MAX_PAYLOAD_BYTES } from '../../shared/topology.ts';
import { listen } from './endpoints.ts';
import { limitPacketSize } from './packet-limit.ts';
import { type PolicyDecision, policyHooks } from './policy-auth.ts';
import type { RetainedStore } from './retained.ts';

export interface BrokerOptions {
  port: number;
  retained: RetainedStore;
  onDeny?: (decision: PolicyDecision) => void;
  /** Largest MQTT packet a client may send (remaining length); IoT Core's payload limit plus room for the topic. */
  maxPacketBytes?: number;
  /** A client's connection was closed for sending a packet over the limit. */
  onOversized?: (reason: string) => void;
}

/** Room beyond the payload for the topic name, packet id and properties. */
const PACKET_OVERHEAD_BYTES = 4 * 1024;

export interface Broker {
  aedes: Aedes;
  port: number;
  /** A trusted in-process publish (no policy check), resolved once routed. */
  publish(topic: string, payload: Uint8Array, options: { qos: 0 | 1; retain: boolean }): Promise<void>;
  /**
   * Starts serving client connections. Until then a client that connects waits for its
   * CONNACK (its socket is held, not served), so no gateway publishes before the stack's
   * rules listen: aedes acknowledges a QoS 1 publish that no subscriber routed, and the
   * gateway would delete it.
   */
  openIntake(): void;
  /**
   * Takes no more client publishes: the listener closes and every client is disconnected
   * (a QoS 1 publish that got no PUBACK is sent again after the reconnect). In-process
   * publishes still route. The stack stops intake before its rules stop listening, so no
   * PUBACK is ever given for a message that nothing routed.
   */
  stopIntake(): Promise<void>;
  close(): Promise<void>;
}

const SYS_PREFIX = '$SYS/';

export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const { retained } = options;
  const aedes = await Aedes.createBroker({
    ...policyHooks(options.onDeny),
    published(packet, _client, done) {
      if (packet.retain && !packet.topic.startsWith(SYS_PREFIX)) {
        try {
          retained.put(packet.topic, packet.payload as Buffer, packet.qos === 0 ? 0 : 1);
        } catch (error) {
          return done(error as Error);
        }
      }
      done();
    },
  });

  const publish: Broker['publish'] = (topic, payload, { qos, retain }) =>
    new Promise((resolve, reject) => {
      aedes.publish(
        { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false },
        (error) => (error ? reject(error) : resolve()),
      );
    });

  for (const message of retained.list()) {
    await publish(message.topic, message.payload, { qos: message.qos, retain: true });
  }

  const sockets = new Set<Socket>();
  let held: Socket[] | undefined = [];
  const maxPacketBytes = options.maxPacketBytes ?? IOT_MAX_PAYLOAD_BYTES + PACKET_OVERHEAD_BYTES;
  const server = createServer((socket) => {
    limitPacketSize(socket, maxPacketBytes, (reason) => options.onOversized?.(reason));
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (held) held.push(socket);
    else aedes.handle(socket);
  });
  const openIntake = () => {
    const waiting = held ?? [];
    held = undefined;
    for (const socket of waiting) if (!socket.destroyed) aedes.handle(socket);
  };
  let port: number;
  try {
    port = await listen(server, options.port);
  } catch (error) {
    await new Promise<void>((done) => aedes.close(() => done()));
    throw error;
  }

  let intakeStopped: Promise<void> | undefined;
  const stopIntake = () => {
    intakeStopped ??= (async () => {
      const serverClosed = new Promise<void>((done) => server.close(() => done()));
      for (const socket of sockets) socket.destroy();
      await serverClosed;
    })();
    return intakeStopped;
  };

  return {
    aedes,
    port,
    publish,
    openIntake,
    stopIntake,
    async close() {
      const intake = stopIntake();
      await new Promise<void>((done) => aedes.close(() => done()));
      await intake;
    },
  };
}
