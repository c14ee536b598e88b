/**
 * The seam between a live input (MQTT, OPC UA, Modbus TCP) and the device's pipeline. A
 * source turns what its peer sends into readings and hands them to a `SourceSink`; the
 * pipeline (run-live.ts) shapes each reading for the serving model, answers it and makes
 * the results durable. A source owns its connection and its reconnects, nothing else.
 */
import type { SourceStatus } from '../../../shared/schemas.ts';

/** One reading as a source read it: the channels, and where known its own time and series. */
export interface LiveReading {
  /** The reading's own time (epoch ms): a payload field, an OPC UA source timestamp. */
  time?: number;
  /** The series (machine) it belongs to, when the source knows it (a topic level, a config). */
  series?: string;
  /** Channel (feature) name → value, as in a JSON reading. */
  values: Record<string, string | number | null>;
}

export type SourceState = SourceStatus['state'];

/** What a source reports to, given to it by the pipeline. */
export interface SourceSink {
  /**
   * Readings read at `arrivedAt` (epoch ms). A source that cannot pause (OPC UA, Modbus)
   * pushes whatever comes: when the queue is full the oldest readings go, and are counted.
   */
  push(readings: readonly LiveReading[], arrivedAt: number): void;
  /** A message or value the source could not read: counted and sampled with its reason. */
  malformed(reason: string, raw: unknown): void;
  /** The connection's state changed (a reconnect counts when 'connected' follows a drop). */
  state(state: SourceState): void;
  /** Free to log (reconnect back-off, server errors), rate-limited by the caller. */
  log(line: string): void;
}

/** A live input: started once, stopped once; it reconnects by itself until stopped. */
export interface LiveSource {
  /** The name in the status, the errors log and result ids (e.g. `mqtt`, `opcua`). */
  readonly name: string;
  start(sink: SourceSink): Promise<void>;
  stop(): Promise<void>;
}

/** Reconnect back-off: doubles from `minMs` to `maxMs`, with jitter so a fleet does not stampede. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly minMs = 1_000,
    private readonly maxMs = 30_000,
  ) {}

  next(): number {
    const base = Math.min(this.maxMs, this.minMs * 2 ** this.attempt++);
    return Math.round(base * (0.75 + Math.random() * 0.25));
  }

  reset(): void {
    this.attempt = 0;
  }
}
