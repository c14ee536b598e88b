/**
 * The small command framework every `edgeloop` subcommand uses: declared options parsed
 * strictly (an unknown flag is a usage error), `--help` with an example, exit code 2 and a
 * one-line reason for bad usage, and no stack traces for errors meant for the user.
 */

import { parseArgs } from 'node:util';
import { EdgeloopError, errorMessage } from '../errors.ts';
import { DEFAULT_DATA_DIR } from '../local-data-dir.ts';
import { ModelName } from '../schemas.ts';

export type OptionSpec =
  | { type: 'string'; short?: string; description: string; default?: string; valueName?: string }
  | { type: 'boolean'; short?: string; description: string };

export interface CommandContext<V> {
  values: V;
  positionals: string[];
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  examples: string[];
  options: Record<string, OptionSpec>;
  /** Positional arguments: [min, max]. */
  positionals?: [number, number];
  run(ctx: CommandContext<Record<string, string | boolean | undefined>>): Promise<number>;
}

/** Bad usage: exit code 2 with a one-line reason. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const commonOptions = {
  json: { type: 'boolean', description: 'print one JSON object (last line of stdout) for scripts' },
  quiet: { type: 'boolean', short: 'q', description: 'print only errors and the final result' },
  help: { type: 'boolean', short: 'h', description: 'show this help' },
} as const satisfies Record<string, OptionSpec>;

export function defineCommand(command: Command): Command {
  return command;
}

export function parseCommandArgs(command: Command, argv: string[]) {
  const options: Record<string, OptionSpec> = { ...commonOptions, ...command.options };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(options).map(([name, spec]) => [
          name,
          { type: spec.type, ...(spec.short ? { short: spec.short } : {}) },
        ]),
      ),
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${(error as Error).message.split('. ')[0]} (see: edgeloop ${command.name} --help)`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  for (const [name, spec] of Object.entries(command.options)) {
    if (spec.type === 'string' && values[name] === undefined && spec.default !== undefined)
      values[name] = spec.default;
  }
  if (!values.help) {
    const [min, max] = command.positionals ?? [0, 0];
    if (parsed.positionals.length < min) throw new UsageError(`missing argument: ${command.usage}`);
    if (parsed.positionals.length > max) {
      throw new UsageError(`unexpected argument '${parsed.positionals[max]}': ${command.usage}`);
    }
  }
  return { values, positionals: parsed.positionals };
}

export function helpText(command: Command): string {
  const options: Record<string, OptionSpec> = { ...command.options, ...commonOptions };
  const lines = [
    `edgeloop ${command.name}: ${command.summary}`,
    '',
    `Usage: ${command.usage}`,
    '',
    'Options:',
  ];
  for (const [name, spec] of Object.entries(options)) {
    const flag = `${spec.short ? `-${spec.short}, ` : '    '}--${name}${spec.type === 'string' ? ` ${spec.valueName ?? 'VALUE'}` : ''}`;
    const def = spec.type === 'string' && spec.default !== undefined ? ` (default: ${spec.default})` : '';
    lines.push(`  ${flag.padEnd(30)} ${spec.description}${def}`);
  }
  lines.push('', 'Examples:', ...command.examples.map((example) => `  ${example}`));
  return lines.join('\n');
}

/** A string option as a positive integer, or a usage error naming the flag. */
export function intOption(values: Record<string, unknown>, name: string, min = 1): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min)
    throw new UsageError(`--${name} must be an integer >= ${min}, got '${raw}'`);
  return value;
}

export function requiredString(values: Record<string, unknown>, name: string): string {
  const raw = values[name];
  if (typeof raw !== 'string' || raw === '') throw new UsageError(`--${name} is required`);
  return raw;
}

/** `--data-dir`: where a local stack keeps its state and remembered endpoints. */
export const dataDirOption = {
  type: 'string',
  description: 'data dir of the local stack (buckets, tables, retained messages, keys, endpoints)',
  default: DEFAULT_DATA_DIR,
  valueName: 'DIR',
} as const satisfies OptionSpec;

/** `--model NAME`, checked against the model-name alphabet; undefined when absent and optional. */
export function modelOption(values: Record<string, unknown>, required: true): string;
export function modelOption(values: Record<string, unknown>, required: false): string | undefined;
export function modelOption(values: Record<string, unknown>, required: boolean): string | undefined {
  if (values.model === undefined && !required) return undefined;
  const model = requiredString(values, 'model');
  const parsed = ModelName.safeParse(model);
  if (!parsed.success)
    throw new UsageError(`--model '${model}' is not a valid model name: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/**
 * Parses `argv` for one command and runs it: `--help`, exit code 2 with a one-line reason for
 * bad usage, 1 for an error meant for the user (no stack trace unless EDGELOOP_DEBUG is set).
 * `edgeloop <command>` and the packaged `edgeloop-device` both come through here.
 */
export async function runCommand(
  command: Command,
  argv: string[],
  io: { out: (line: string) => void; err: (line: string) => void },
): Promise<number> {
  const { out, err } = io;
  try {
    const { values, positionals } = parseCommandArgs(command, argv);
    if (values.help) {
      out(helpText(command));
      return 0;
    }
    return await command.run({ values, positionals, out, err });
  } catch (error) {
    if (error instanceof UsageError) {
      err(`edgeloop ${command.name}: ${error.message}`);
      return 2;
    }
    if (error instanceof EdgeloopError) {
      err(`edgeloop ${command.name}: ${error.message}`);
      return 1;
    }
    err(`edgeloop ${command.name}: unexpected failure: ${errorMessage(error)}`);
    if (process.env.EDGELOOP_DEBUG) err(String((error as Error).stack));
    return 1;
  }
}
