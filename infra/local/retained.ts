/**
 * Retained MQTT messages kept on disk, one JSON file per topic, so release notices survive a
 * restart of the local stack (aedes keeps retained messages in memory only). An empty
 * retained payload clears the topic, as in MQTT.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

export interface RetainedMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  /** Epoch milliseconds. */
  lastModifiedTime: number;
}

const FileSchema = z.object({
  topic: z.string().min(1),
  payload: z.string(),
  qos: z.union([z.literal(0), z.literal(1)]),
  lastModifiedTime: z.number(),
});

export class RetainedStore {
  private readonly messages = new Map<string, RetainedMessage>();

  /** Loads what `dir` holds; unreadable files are reported through `onSkip` and ignored. */
  constructor(
    private readonly dir: string,
    onSkip: (file: string, reason: string) => void = () => {},
  ) {
    mkdirSync(dir, { recursive: true });
    for (const file of readdirSync(dir).filter((name) => name.endsWith('.json'))) {
      try {
        const parsed = FileSchema.parse(JSON.parse(readFileSync(join(dir, file), 'utf8')));
        this.messages.set(parsed.topic, { ...parsed, payload: Buffer.from(parsed.payload, 'base64') });
      } catch (error) {
        onSkip(file, (error as Error).message);
      }
    }
  }

  /** Stores (or, for an empty payload, clears) the retained message of `topic`. */
  put(topic: string, payload: Uint8Array, qos: 0 | 1, now = Date.now()): void {
    const file = join(this.dir, `${createHash('sha256').update(topic).digest('hex')}.json`);
    if (payload.length === 0) {
      this.messages.delete(topic);
      rmSync(file, { force: true });
      return;
    }
    const message: RetainedMessage = { topic, payload: Buffer.from(payload), qos, lastModifiedTime: now };
    const body = JSON.stringify({ ...message, payload: message.payload.toString('base64') });
    writeFileSync(`${file}.tmp`, body);
    renameSync(`${file}.tmp`, file);
    this.messages.set(topic, message);
  }

  get(topic: string): RetainedMessage | undefined {
    return this.messages.get(topic);
  }

  list(): RetainedMessage[] {
    return [...this.messages.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
  }
}
