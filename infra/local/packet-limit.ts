/**
 * The local broker's packet size limit. IoT Core refuses an MQTT message over 128 KB; aedes
 * has no limit and buffers whatever length a packet's header announces (up to 256 MB), so one
 * client could exhaust the local stack's memory. This reads each packet's fixed header as
 * the bytes are consumed and closes the connection as soon as one announces more than the
 * limit, before its body is buffered.
 */
import type { Socket } from 'node:net';

/** Follows packet boundaries in an MQTT byte stream; `feed` says why to stop, if it must. */
export class PacketSizeGuard {
  private remaining = 0;
  private inLength = false;
  private length = 0;
  private shift = 0;

  constructor(private readonly maxBytes: number) {}

  feed(chunk: Uint8Array): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        continue;
      }
      if (!this.inLength) {
        // The packet type byte; the remaining length (a varint of 1-4 bytes) follows.
        i++;
        this.inLength = true;
        this.length = 0;
        this.shift = 0;
        continue;
      }
      const byte = chunk[i++] ?? 0;
      this.length += (byte & 0x7f) * 2 ** this.shift;
      this.shift += 7;
      if (byte & 0x80) {
        if (this.shift >= 28) return 'malformed MQTT remaining length (more than 4 bytes)';
        continue;
      }
      this.inLength = false;
      if (this.length > this.maxBytes)
        return `an MQTT packet of ${this.length} bytes is over the broker's ${this.maxBytes}-byte limit`;
      this.remaining = this.length;
    }
    return undefined;
  }
}

/**
 * Applies the guard to everything read from `socket` (aedes reads with `read()` when the
 * socket is readable), destroying the socket at the first packet over the limit.
 */
export function limitPacketSize(
  socket: Socket,
  maxBytes: number,
  onRefuse: (reason: string) => void,
): Socket {
  const guard = new PacketSizeGuard(maxBytes);
  const read = socket.read.bind(socket);
  socket.read = (size?: number) => {
    const chunk = read(size) as Buffer | string | null;
    if (chunk === null || typeof chunk === 'string') return chunk;
    const refusal = guard.feed(chunk);
    if (!refusal) return chunk;
    onRefuse(refusal);
    socket.destroy();
    return null;
  };
  return socket;
}
