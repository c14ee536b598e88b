/**
 * A configured live input, from its settings to results: the source (MQTT, OPC UA, Modbus
 * TCP), the queue of what it received, for MQTT the received journal, and the pipeline.
 */
import { join } from 'node:path';
import { errorMessage } from '../../../shared/errors.ts';
import type { SourceStatus } from '../../../shared/schemas.ts';
import type { ModbusSettings } from '../modbus/settings.ts';
import type { MqttRecord } from '../mqtt/mqtt-source.ts';
import type { MqttSourceSettings } from '../mqtt/settings.ts';
import type { OpcuaSettings } from '../opcua/settings.ts';
import type { SourceContext } from '../read-source.ts';
import { Journal } from './journal.ts';
import type { LiveSource } from './live-source.ts';
import { ReceivedQueue } from './received.ts';
import { queueSink, runLive, SourceCounters } from './run-live.ts';

export type LiveSpec =
  | { kind: 'mqtt'; settings: MqttSourceSettings }
  | { kind: 'modbus'; settings: ModbusSettings }
  | { kind: 'opcua'; settings: OpcuaSettings };

/** Readings a source that cannot pause may have waiting before the oldest go. */
const UNPAUSABLE_QUEUE_READINGS = 10_000;

/** Reads `spec` until the device stops; its status entry is handed out through `ctx.onSourceStatus`. */
export async function runLiveInput(spec: LiveSpec, ctx: SourceContext): Promise<void> {
  const name = spec.kind === 'mqtt' ? spec.kind : spec.settings.name;
  const pausable = spec.kind === 'mqtt';
  const queue = new ReceivedQueue(
    spec.kind === 'mqtt' ? spec.settings.queueReadings : UNPAUSABLE_QUEUE_READINGS,
    pausable ? 'hold' : 'drop-oldest',
  );
  const counters = new SourceCounters(name, spec.kind, queue);
  ctx.onSourceStatus((now?: number): SourceStatus => counters.status(now));
  const refuse = ctx.refuse(name);
  const log = (line: string) => ctx.log(line);
  const sink = queueSink(queue, counters, refuse, log, ctx.durablePosition());
  let journal: Journal<MqttRecord> | undefined;
  let source: LiveSource;
  if (spec.kind === 'mqtt') {
    const opened = Journal.open<MqttRecord>(join(ctx.stateDir, 'received', name), ctx.durablePosition);
    journal = opened.journal;
    if (opened.pending.length > 0)
      log(`mqtt: ${opened.pending.length} message(s) acknowledged by the last run are answered first`);
    // Each input's client is loaded only when configured (the package keeps it in a chunk
    // of its own): merely parsing the OPC UA client costs a process about 20 MB.
    const { MqttSource } = await import('../mqtt/mqtt-source.ts');
    source = new MqttSource(spec.settings, {
      thing: ctx.thing,
      queue,
      journal,
      pending: opened.pending,
      gate: ctx.gate,
      ...(ctx.gateOpen ? { gateOpen: ctx.gateOpen } : {}),
      stopped: ctx.stopped,
      onReceived: (count, at) => counters.received(count, at),
      onDuplicate: () => counters.duplicates++,
    });
  } else if (spec.kind === 'modbus') {
    const { ModbusSource } = await import('../modbus/modbus-source.ts');
    source = new ModbusSource(spec.settings);
  } else {
    const { OpcuaSource } = await import('../opcua/opcua-source.ts');
    source = new OpcuaSource({
      ...spec.settings,
      // The client's certificate store lives with the gateway's state, not under $HOME.
      pkiDir: spec.settings.pkiDir ?? join(ctx.stateDir, 'opcua-pki'),
    });
  }
  const close = () => queue.close();
  ctx.signal.addEventListener('abort', close);
  try {
    await source.start(sink);
    await runLive(queue, {
      name,
      thing: ctx.thing,
      engine: ctx.engine,
      batcher: ctx.batcher,
      labelColumn: ctx.labelColumn,
      stopped: ctx.stopped,
      gate: ctx.gate,
      refuse,
      onProduced: ctx.onProduced,
      ...(ctx.series ? { series: ctx.series } : {}),
      ...(ctx.onWindowResults ? { onWindowResults: ctx.onWindowResults } : {}),
      onWindowStream: ctx.onWindowStream,
    });
  } finally {
    ctx.signal.removeEventListener('abort', close);
    await source.stop().catch((error: unknown) => log(`${name}: stop: ${errorMessage(error)}`));
    journal?.close();
  }
}
