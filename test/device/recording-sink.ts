/**
 * A SourceSink that records what a live source reports (the seam between a source and the
 * pipeline), for the live source tests.
 */
export { freePort } from '../../bench/support/free-port.ts';

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
