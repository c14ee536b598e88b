/**
 * The result writer: encodes CSV replay results, cuts batches and makes them durable for
 * every device stream of the process. Each batch goes back to its stream's Outbox once it is
 * durable. It speaks in messages (result-writer-protocol.ts), so the streams (result-writer.ts)
 * hand it their work and hear back the same way whatever runs it.
 */
import { errorMessage } from '../../shared/errors.ts';
import { BatchLog } from './batch-log.ts';
import { ResultBatcher } from './batcher.ts';
import { ReplayEncoder, replayResultReader } from './result-encoding.ts';
import type { FromWriter, ToWriter } from './result-writer-protocol.ts';
import { SummaryBatcher } from './summary-batcher.ts';

/** A device's stream: detail batches (results as JSON) or, in summary mode, summary batches. */
interface Stream {
  log: BatchLog;
  encoder: ReplayEncoder;
  batcher: ResultBatcher | SummaryBatcher;
  truths: readonly string[];
  failed: boolean;
}

/** A writer for every stream of the process: its handler of messages; `post` hears back. */
export function createResultWriter(post: (message: FromWriter) => void): (message: ToWriter) => void {
  const streams = new Map<number, Stream>();
  return (message) => handle(message, streams, post);
}

function open(message: Extract<ToWriter, { type: 'open' }>, post: (message: FromWriter) => void): Stream {
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
    batcher: message.summary
      ? new SummaryBatcher(sink, message.model, message.summary)
      : new ResultBatcher(sink, message.model, () => undefined, message.batch, {
          dir: message.dir,
          journalled: (from, to) => post({ type: 'journalled', stream: message.stream, from, to }),
          fault: (text) => post({ type: 'journal-fault', stream: message.stream, message: text }),
        }),
    truths: [],
    failed: false,
  };
}

async function settle(
  post: (message: FromWriter) => void,
  stream: Stream,
  id: number,
  token: number,
  orHeld = false,
) {
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

function handle(message: ToWriter, streams: Map<number, Stream>, post: (message: FromWriter) => void) {
  if (message.type === 'open') {
    streams.set(message.stream, open(message, post));
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
        const n = chunk.best.length;
        if (stream.batcher instanceof SummaryBatcher) {
          const resultAt = replayResultReader(chunk.first, chunk, stream.truths, chunk.ts);
          stream.batcher.addEach(chunk.version, message.lowConfidence, n, resultAt, chunk.csvNext);
          post({ type: 'folded', stream: message.stream, count: n });
        } else {
          const results = stream.encoder.encode(chunk.first, n, chunk, stream.truths, chunk.ts);
          stream.batcher.addEncoded(chunk.version, results, chunk.csvNext);
        }
        break;
      }
      case 'encoded':
        if (stream.batcher instanceof SummaryBatcher)
          throw new Error('a summary stream takes results, not JSON');
        stream.batcher.addEncoded(message.version, message.chunk, message.csvNext);
        break;
      case 'results':
        if (!(stream.batcher instanceof SummaryBatcher))
          throw new Error('a detail stream takes JSON results');
        stream.batcher.add(message.version, message.lowConfidence, message.results, message.csvNext);
        post({ type: 'folded', stream: message.stream, count: message.results.length });
        break;
      case 'flush':
        void settle(post, stream, message.stream, message.token, message.orHeld);
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
        } else void settle(post, stream, message.stream, message.token);
        break;
    }
  } catch (error) {
    if (!stream.failed) post({ type: 'failed', stream: message.stream, error: errorMessage(error) });
    stream.failed = true;
  }
}
