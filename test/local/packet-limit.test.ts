/**
 * The local broker closes a connection whose MQTT packet announces more than IoT Core's
 * message size, before the body arrives; packets within the limit are served as before.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, startBroker } from '../../infra/local/broker.ts';
import { PacketSizeGuard } from '../../infra/local/packet-limit.ts';
import { RetainedStore } from '../../infra/local/retained.ts';
import { IOT_MAX_PAYLOAD_BYTES, topicFor } from '../../shared/topology.ts';

/** MQTT's remaining length: 7 bits per byte, high bit = more. */
function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    bytes.push(byte);
  } while (rest > 0);
  return bytes;
}

const utf8 = (text: string) => [text.length >> 8, text.length & 0xff, ...Buffer.from(text)];
const packet = (type: number, body: number[]) => Buffer.from([type, ...varint(body.length), ...body]);
const connectPacket = (clientId: string) =>
  packet(0x10, [...utf8('MQTT'), 4, 0x02, 0, 60, ...utf8(clientId)]);
/** A QoS 0 PUBLISH header announcing `payloadBytes`, with only the topic sent. */
const publishHeader = (topic: string, payloadBytes: number) =>
  Buffer.from([0x30, ...varint(2 + topic.length + payloadBytes), ...utf8(topic)]);

describe('the broker packet size limit', () => {
  let dir: string;
  let broker: Broker;
  const refusals: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeloop-packets-'));
    broker = await startBroker({
      port: 0,
      retained: new RetainedStore(join(dir, 'retained')),
      onOversized: (reason) => refusals.push(reason),
    });
    broker.openIntake();
  });

  afterAll(async () => {
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function connected(thing: string): Promise<Socket> {
    const socket = connect(broker.port, '127.0.0.1');
    const connack = new Promise<Buffer>((resolve) => socket.once('data', resolve));
    socket.write(connectPacket(thing));
    expect([...(await connack)].slice(0, 4)).toEqual([0x20, 2, 0, 0]);
    return socket;
  }

  it('closes the connection at a packet announcing more than IoT Core takes, before its body arrives', async () => {
    // Prepare
    const socket = await connected('gw-big');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));

    // Act: only the header and the topic are sent; the 300 KB body never is.
    socket.write(publishHeader(topicFor('status', { thing: 'gw-big' }), 300 * 1024));
    await closed;

    // Assess
    expect(refusals.at(-1)).toMatch(/an MQTT packet of \d+ bytes is over the broker's \d+-byte limit/);
  });

  it('serves packets within the limit: a full-size payload, then a ping', async () => {
    // Prepare
    const socket = await connected('gw-ok');
    const topic = topicFor('status', { thing: 'gw-ok' });
    const pong = new Promise<Buffer>((resolve) =>
      socket.on('data', (data) => data.includes(0xd0) && resolve(data)),
    );

    // Act
    socket.write(
      Buffer.concat([publishHeader(topic, IOT_MAX_PAYLOAD_BYTES), Buffer.alloc(IOT_MAX_PAYLOAD_BYTES, 0x61)]),
    );
    socket.write(Buffer.from([0xc0, 0]));
    const answer = await pong;
    socket.destroy();

    // Assess
    expect([...answer]).toContain(0xd0);
  });

  it('follows packet boundaries across chunks of any size', () => {
    // Prepare: three packets (one of zero length) cut at every byte.
    const stream = Buffer.concat([
      packet(0x30, [1, 2, 3]),
      Buffer.from([0xc0, 0]),
      packet(0x30, new Array(200).fill(7)),
    ]);
    const guard = new PacketSizeGuard(199);

    // Act
    const refusals = [...stream].map((byte) => guard.feed(Uint8Array.of(byte))).filter(Boolean);

    // Assess: the third announces 200 bytes, one over.
    expect(refusals).toEqual(["an MQTT packet of 200 bytes is over the broker's 199-byte limit"]);
    expect(new PacketSizeGuard(10).feed(Uint8Array.of(0x30, 0xff, 0xff, 0xff, 0xff, 0x01))).toMatch(
      /malformed/,
    );
  });
});
