import { join } from 'node:path';
import { deviceConfigFromArgs, deviceRunOptions, runUntilDone, summary } from '../../../device/command.ts';
import { deviceOptionsFrom } from '../../../device/config.ts';
import { type Device, startDevice } from '../../../device/service.ts';
import { type CommandContext, defineCommand, intOption } from '../../../shared/cli/command.ts';
import { EdgeloopError } from '../../../shared/errors.ts';
import { DEFAULT_DATA_DIR } from '../../../shared/local-data-dir.ts';

type Values = Record<string, string | boolean | undefined>;

export const fleetSimCommand = defineCommand({
  name: 'fleet-sim',
  summary: 'run N simulated gateways in one process (local load and rollout tests)',
  usage:
    'edgeloop fleet-sim --devices N --model NAME --source csv:FILE [--rate N] [--limit N] [--data-dir DIR]',
  examples: [
    'edgeloop fleet-sim --devices 20 --model sensors --source csv:data/sensors.csv --rate 50 --limit 2000',
  ],
  options: {
    devices: { type: 'string', description: 'how many gateways', default: '3', valueName: 'N' },
    prefix: {
      type: 'string',
      description: 'thing name prefix (things are PREFIX-1..N)',
      default: 'sim',
      valueName: 'NAME',
    },
    ...deviceRunOptions,
  },
  async run(ctx: CommandContext<Values>) {
    const { values, out, err } = ctx;
    const count = intOption(values, 'devices') ?? 3;
    const prefix = values.prefix as string;
    const dataDir = (values['data-dir'] as string | undefined) ?? DEFAULT_DATA_DIR;
    const log = values.quiet ? undefined : (line: string) => err(line);
    const devices: Device[] = [];
    let limited = false;
    try {
      for (let i = 1; i <= count; i++) {
        const thing = `${prefix}-${i}`;
        const config = deviceConfigFromArgs(values, { thing, stateDir: join(dataDir, 'fleet', thing) });
        const options = deviceOptionsFrom(config, log && ((line) => log(`${thing} ${line}`)));
        limited = options.source?.kind === 'csv' && options.source.limit !== undefined;
        devices.push(await startDevice(options));
      }
    } catch (error) {
      await Promise.all(devices.map((device) => device.stop()));
      throw error;
    }
    const signal = await runUntilDone(devices, limited, err);
    const snapshots = devices.map((device) => summary(device.status()));
    if (values.json) out(JSON.stringify({ devices: snapshots }));
    else
      for (const s of snapshots)
        out(
          `${s.thing}: model v${s.modelVersion ?? '-'}, ${s.produced} produced, ${s.published} acknowledged`,
        );
    if (limited && !signal && devices.some((device) => !device.status().finished))
      throw new EdgeloopError(
        'stopped before every result was acknowledged; run again with the same --data-dir to continue',
      );
    return 0;
  },
});
