/**
 * The result writer thread: encodes CSV replay results, cuts batches and makes them durable
 * for every device stream of the process, so the main thread keeps predicting. Each batch
 * goes back to the main thread's Outbox once it is durable. See result-writer.ts.
 */
import { parentPort } from 'node:worker_threads';
import { errorMessage } from '../shared/errors.ts';
import { BatchLog } from './batch-log.ts';
import { ResultBatcher } from './batcher.ts';
import { ReplayEncoder } from './result-encoding.ts';
import type { FromWriter, ToWriter } from './result-writer-protocol.ts';

interface Stream {
  log: BatchLog;
  encoder: ReplayEncoder;
  batcher: ResultBatcher;
  truths: readonly string[];
  failed: boolean;
}

const port = parentPort;
if (!port) throw new Error('result-writer-thread runs as a worker thread');
const post = (message: FromWriter) => port.postMessage(message);
const streams = new Map<number, Stream>();

function open(message: Extract<ToWriter, { type: 'open' }>): Stream {
  const log = new BatchLog(message.dir, message.nextSeq, ({ fault, heldBytes }) =>
    post({ type: 'storage', stream: message.stream, heldBytes, ...(fault ? { fault } : {}) }),
  );
  const sink = {
    append: async (input: Parameters<BatchLog['append']>[0]) => {
      post({ type: 'stored', stream: message.stream, batch: await log.append(input) });
      return true; // the main thread's Outbox applies the overflow policy when it adopts it
    },
    flush: () => log.flush(),
  };
  return {
    log,
    encoder: new ReplayEncoder(message.thing),
    batcher: new ResultBatcher(sink, message.model, () => undefined, message.batch),
    truths: [],
    failed: false,
  };
}

async function settle(stream: Stream, id: number, token: number, orHeld = false) {
  try {
    // A held batch never resolves its append until the disk has room: `orHeld` answers before.
    if (orHeld) {
      stream.batcher.cut();
      await stream.log.flush(true);
    } else await stream.batcher.flush();
    post({ type: 'done', stream: id, token });
  } catch (error) {
    post({ type: 'done', stream: id, token, error: errorMessage(error) });
  }
}

port.on('message', (message: ToWriter) => {
  if (message.type === 'open') {
    streams.set(message.stream, open(message));
    return;
  }
  const stream = streams.get(message.stream);
  if (!stream) return;
  try {
    switch (message.type) {
      case 'truths':
        stream.truths = message.truths;
        break;
      case 'replay': {
        const { chunk } = message;
        const results = stream.encoder.encode(chunk.first, chunk.best.length, chunk, stream.truths, chunk.ts);
        stream.batcher.addEncoded(chunk.version, results, chunk.csvNext);
        break;
      }
      case 'encoded':
        stream.batcher.addEncoded(message.version, message.chunk, message.csvNext);
        break;
      case 'flush':
        void settle(stream, message.stream, message.token, message.orHeld);
        break;
      case 'retry':
        stream.log.retry();
        break;
      case 'close':
        streams.delete(message.stream);
        // Closing while the disk holds batches: they are given up (see BatchLog.abandon).
        if (stream.log.holding) {
          stream.batcher.cut();
          stream.log.abandon('the result stream closed while the disk was full');
          post({ type: 'done', stream: message.stream, token: message.token });
        } else void settle(stream, message.stream, message.token);
        break;
    }
  } catch (error) {
    if (!stream.failed) post({ type: 'failed', stream: message.stream, error: errorMessage(error) });
    stream.failed = true;
  }
});
