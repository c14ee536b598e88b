/**
 * A SourceSink that records what a live source reports (the seam between a source and the
 * pipeline), and a free port for its real peer, for the live source tests.
 */
import { createServer } from 'node:net';
import type { LiveReading, SourceSink, SourceState } from '../../device/sources/live/live-source.ts';

export interface RecordingSink extends SourceSink {
  readings: LiveReading[];
  malformedReasons: string[];
  states: SourceState[];
  logs: string[];
}

export function recordingSink(): RecordingSink {
  const sink: RecordingSink = {
    readings: [],
    malformedReasons: [],
    states: [],
    logs: [],
    push: (readings) => {
      sink.readings.push(...readings);
    },
    malformed: (reason) => {
      sink.malformedReasons.push(reason);
    },
    state: (state) => {
      sink.states.push(state);
    },
    log: (line) => {
      sink.logs.push(line);
    },
  };
  return sink;
}

/** A port nothing listens on right now (the OS picks it), for a peer that restarts on the same port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
