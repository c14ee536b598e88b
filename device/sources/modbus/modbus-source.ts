/**
 * Modbus TCP input: polls a server's holding or input registers at a fixed interval from a
 * register map, and turns each successful poll into one reading (README.md beside this file).
 * Modbus carries no timestamps, so a reading's time is its arrival at the gateway.
 */
import modbusSerial from 'modbus-serial';
import { errorMessage } from '../../../shared/errors.ts';
import { Backoff, type LiveSource, type SourceSink, type SourceState } from '../live/live-source.ts';
import { type ModbusRegister, type ModbusSettings, WIDE_TYPES } from './settings.ts';

// CommonJS: the module is the client class, and its `default` is the module again (typed as the class).
const ModbusRTU = modbusSerial.default;
type ModbusRTU = InstanceType<typeof ModbusRTU>;

/** The protocol's limit on one read request (FC 3 and FC 4 answer at most 125 registers). */
const MAX_REGISTERS_PER_READ = 125;

/** One read request: registers of one unit and function, `count` of them from `start`. */
export interface ReadBlock {
  unitId: number;
  function: ModbusRegister['function'];
  start: number;
  count: number;
  registers: ModbusRegister[];
}

function width(register: ModbusRegister): number {
  return WIDE_TYPES.includes(register.type) ? 2 : 1;
}

/**
 * The requests one poll makes. Registers of one unit and function that are contiguous (or
 * overlap) share a request, up to the protocol's 125 registers: every request is a network
 * round-trip, so fewer requests make a poll shorter and let the interval be tighter. Gaps are
 * not bridged: a device may answer an unmapped address with an exception, failing the block.
 */
export function planReads(registers: readonly ModbusRegister[]): ReadBlock[] {
  const sorted = [...registers].sort(
    (a, b) =>
      a.unitId - b.unitId ||
      a.function.localeCompare(b.function) ||
      a.address - b.address ||
      width(b) - width(a),
  );
  const blocks: ReadBlock[] = [];
  for (const register of sorted) {
    const last = blocks.at(-1);
    const end = register.address + width(register);
    if (
      last &&
      last.unitId === register.unitId &&
      last.function === register.function &&
      register.address <= last.start + last.count &&
      Math.max(last.start + last.count, end) - last.start <= MAX_REGISTERS_PER_READ
    ) {
      last.count = Math.max(last.count, end - last.start);
      last.registers.push(register);
    } else {
      blocks.push({
        unitId: register.unitId,
        function: register.function,
        start: register.address,
        count: width(register),
        registers: [register],
      });
    }
  }
  return blocks;
}

/** A register's raw value from a block's answer (big-endian bytes, as Modbus sends them). */
export function decodeRegister(register: ModbusRegister, words: Buffer, index: number): number {
  const at = index * 2;
  if (register.type === 'int16') return words.readInt16BE(at);
  if (register.type === 'uint16') return words.readUInt16BE(at);
  // Bytes within a word are always big-endian; only the word order varies between devices.
  const ordered =
    register.wordOrder === 'little'
      ? Buffer.concat([words.subarray(at + 2, at + 4), words.subarray(at, at + 2)])
      : words.subarray(at, at + 4);
  if (register.type === 'int32') return ordered.readInt32BE(0);
  if (register.type === 'uint32') return ordered.readUInt32BE(0);
  return ordered.readFloatBE(0);
}

function where(block: ReadBlock, register?: ModbusRegister): string {
  const span = register
    ? `${register.address} (channel ${register.channel}, ${register.type})`
    : `${block.start}..${block.start + block.count - 1}`;
  return `unit ${block.unitId} ${block.function} ${span}`;
}

/** A Modbus exception response (the server answered, refusing): modbus-serial sets `modbusCode`. */
function isExceptionResponse(error: unknown): boolean {
  return typeof (error as { modbusCode?: unknown })?.modbusCode === 'number';
}

const SKIP_LOG_EVERY_MS = 60_000;

export class ModbusSource implements LiveSource {
  readonly name: string;
  private readonly plan: ReadBlock[];
  private readonly backoff: Backoff;
  private sink: SourceSink | undefined;
  /** The live connection; undefined while (re)connecting or once stopped. */
  private client: ModbusRTU | undefined;
  /** The connection whose poll is running: a poll of a dropped connection never blocks the next one's. */
  private polling: ModbusRTU | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private current: SourceState | undefined;
  private connectedOnce = false;
  private stopped = false;
  private skipped = 0;
  private skipLoggedAt = -Infinity;

  constructor(
    private readonly settings: ModbusSettings,
    options: { backoff?: Backoff } = {},
  ) {
    this.name = settings.name;
    this.plan = planReads(settings.registers);
    this.backoff = options.backoff ?? new Backoff();
  }

  async start(sink: SourceSink): Promise<void> {
    this.sink = sink;
    this.setState('connecting');
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pollTimer);
    const client = this.client;
    this.client = undefined;
    if (client) await close(client);
    this.setState('stopped');
  }

  private setState(state: SourceState): void {
    if (state === this.current) return;
    this.current = state;
    this.sink?.state(state);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new ModbusRTU();
    // Without a listener an 'error' event would throw out of the socket's callback.
    client.on('error', (error) => this.sink?.log(`${this.name}: ${errorMessage(error)}`));
    client.on('close', () => this.drop(client, new Error('the server closed the connection')));
    this.client = client;
    try {
      await client.connectTCP(this.settings.host, {
        port: this.settings.port,
        timeout: this.settings.timeoutMs,
      });
      client.setTimeout(this.settings.timeoutMs);
    } catch (error) {
      this.drop(client, error);
      return;
    }
    if (this.client !== client) return; // stopped (or dropped) while connecting
    this.backoff.reset();
    this.connectedOnce = true;
    this.setState('connected');
    this.pollTimer = setInterval(() => void this.poll(client), this.settings.intervalMs);
    void this.poll(client);
  }

  /** The connection failed: close it and try again after the back-off. Idempotent per connection. */
  private drop(client: ModbusRTU, error: unknown): void {
    if (this.stopped || this.client !== client) return;
    this.client = undefined;
    clearInterval(this.pollTimer);
    void close(client);
    this.setState(this.connectedOnce ? 'reconnecting' : 'connecting');
    const delay = this.backoff.next();
    this.sink?.log(
      `${this.name}: ${this.settings.host}:${this.settings.port}: ${errorMessage(error)}; retrying in ${delay} ms`,
    );
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private async poll(client: ModbusRTU): Promise<void> {
    if (this.polling === client) {
      this.skipOverlap();
      return;
    }
    this.polling = client;
    try {
      const values: Record<string, number> = {};
      for (const block of this.plan) {
        if (this.client !== client) return;
        const words = await this.read(client, block);
        if (words) this.decodeBlock(block, words, values);
      }
      // Modbus carries no timestamps: the reading takes its arrival time (timeFrom 'arrival').
      if (this.client === client && Object.keys(values).length > 0)
        this.sink?.push(
          [{ ...(this.settings.series ? { series: this.settings.series } : {}), values }],
          Date.now(),
        );
    } catch (error) {
      this.drop(client, error);
    } finally {
      if (this.polling === client) this.polling = undefined;
    }
  }

  /** One block's registers, or undefined when the server refused them (an exception response). */
  private async read(client: ModbusRTU, block: ReadBlock): Promise<Buffer | undefined> {
    // Requests go one at a time: many devices and serial gateways cannot take concurrent ones.
    client.setID(block.unitId);
    try {
      const result =
        block.function === 'holding'
          ? await client.readHoldingRegisters(block.start, block.count)
          : await client.readInputRegisters(block.start, block.count);
      return result.buffer;
    } catch (error) {
      if (!isExceptionResponse(error)) throw error;
      this.sink?.malformed(`${where(block)}: ${errorMessage(error)}`, {
        unitId: block.unitId,
        function: block.function,
        address: block.start,
        count: block.count,
      });
      return undefined;
    }
  }

  private decodeBlock(block: ReadBlock, words: Buffer, values: Record<string, number>): void {
    for (const register of block.registers) {
      const index = register.address - block.start;
      const raw = decodeRegister(register, words, index);
      const value = raw * register.scale + register.offset;
      if (!Number.isFinite(value)) {
        const registers = [...words.subarray(index * 2, (index + width(register)) * 2)];
        this.sink?.malformed(`${where(block, register)} is ${raw}, not a finite number`, {
          channel: register.channel,
          unitId: block.unitId,
          function: block.function,
          address: register.address,
          bytes: registers,
        });
        continue;
      }
      values[register.channel] = value;
    }
  }

  /** A poll still running when the next is due: skipped, and said in the log at most once a minute. */
  private skipOverlap(): void {
    this.skipped++;
    const now = Date.now();
    if (now - this.skipLoggedAt < SKIP_LOG_EVERY_MS) return;
    this.sink?.log(
      `${this.name}: skipped ${this.skipped} poll(s): a poll takes longer than intervalMs (${this.settings.intervalMs} ms)`,
    );
    this.skipped = 0;
    this.skipLoggedAt = now;
  }
}

function close(client: ModbusRTU): Promise<void> {
  // Its 'close' event finds it no longer current, so drop() ignores it. destroy() also
  // cancels the pending requests' timers, so a dropped connection leaves nothing armed.
  return new Promise((resolve) => {
    try {
      client.destroy(() => resolve());
    } catch {
      resolve();
    }
  });
}
