import { readEvents } from '../../../functions/events/queries.ts';
import type { EventItem } from '../../../functions/events/record.ts';
import { defineCommand, modelOption, UsageError } from '../../../shared/cli/command.ts';
import { envVars } from '../../../shared/topology.ts';
import { parseDuration, reading, statsSourceFor, targetOptions } from './stats.ts';

const time = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');

/** `2026-12-07T10:00:00Z .. 10:42:00Z  gw-1 / pump-7  closed  peak 41.2 (threshold 3.1)  pressure 71%, flow 20%` */
export function formatEvents(events: readonly EventItem[], since: string): string[] {
  if (events.length === 0) return [`no anomaly events started since ${since}`];
  const rows = events.map((e) => [
    `${time(e.start)} .. ${e.state === 'open' ? 'open' : time(e.end)}`,
    `${e.model} v${e.version}`,
    e.series ? `${e.thing} / ${e.series}` : e.thing,
    e.state,
    `${e.results} results, peak ${e.peakScore} (threshold ${e.threshold})`,
    e.channels.map((c) => `${c.name} ${Math.round(c.share * 100)}%`).join(', '),
  ]);
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => row[i]?.length ?? 0))) ?? [];
  return [
    `${events.length} anomaly events started since ${since}, newest first`,
    ...rows.map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    ),
  ];
}

export const eventsCommand = defineCommand({
  name: 'events',
  summary: 'anomaly events gateways reported: where, since when, which sensors',
  usage:
    'edgeloop events [--model NAME] [--since 1h] [--limit 50] [--data-dir DIR | --aws [--stage S]] [--json]',
  examples: ['edgeloop events --model pumps --since 24h', 'edgeloop events --json'],
  options: {
    model: { type: 'string', description: 'only this model', valueName: 'NAME' },
    since: {
      type: 'string',
      description: 'events that started within this window',
      default: '1h',
      valueName: 'DURATION',
    },
    limit: { type: 'string', description: 'how many events to list at most', default: '50', valueName: 'N' },
    ...targetOptions,
  },
  async run({ values, out }) {
    const sinceMs = Date.now() - parseDuration(String(values.since));
    if (values.model !== undefined) modelOption(values, true);
    const limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1)
      throw new UsageError(`--limit must be an integer >= 1, got '${values.limit}'`);
    const source = await statsSourceFor(values);
    const table = source.tables.events;
    if (!table)
      throw new UsageError(
        `with --aws, set ${envVars.eventsTable} (a stack output) or pass --stage to derive its name`,
      );
    const events = await reading(source.where, () =>
      readEvents(
        { ddb: source.ddb, tables: { events: table } },
        {
          ...(typeof values.model === 'string' ? { model: values.model } : {}),
          sinceMs,
          limit,
        },
      ),
    );
    if (values.json) out(JSON.stringify({ events: events.map(({ pk: _, sk: __, ...event }) => event) }));
    else for (const line of formatEvents(events, time(sinceMs))) out(line);
    return 0;
  },
});
