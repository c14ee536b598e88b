import { type FleetView, readFleet } from '../../../functions/aggregation/queries.ts';
import { OFFLINE_AFTER_MS } from '../../../shared/aggregation/fleet.ts';
import { defineCommand } from '../../../shared/cli/command.ts';
import { parseDuration, reading, statsSourceFor, targetOptions } from './stats.ts';

function ago(nowMs: number, thenMs: number): string {
  const seconds = Math.max(0, Math.round((nowMs - thenMs) / 1000));
  if (seconds < 120) return `${seconds}s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m ago`;
  return `${Math.round(seconds / 3600)}h ago`;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 2 ** 20) return `${(n / 1024).toFixed(0)} KB`;
  if (n < 2 ** 30) return `${(n / 2 ** 20).toFixed(1)} MB`;
  return `${(n / 2 ** 30).toFixed(1)} GB`;
}

/** `disk-full (120 KB free, source paused)`: the gateway's disk as its last status said. */
export function formatDisk(disk: FleetView['things'][number]['disk']): string {
  if (!disk) return '';
  return `disk-${disk.state} (${bytes(disk.freeBytes)} free${disk.sourcePaused ? ', source paused' : ''})`;
}

/** `, refused 12 (missing-features 12)`: readings the gateway would not answer. */
export function formatRefused(refused: FleetView['things'][number]['refused']): string {
  const counts = Object.entries(refused ?? {}).filter(([, n]) => (n ?? 0) > 0);
  if (counts.length === 0) return '';
  const total = counts.reduce((sum, [, n]) => sum + (n ?? 0), 0);
  return `, refused ${total} (${counts.map(([reason, n]) => `${reason} ${n}`).join(', ')})`;
}

/**
 * `mqtt connected 48.5/s last 0.2s ago, 1 reconnects, 2 malformed`: each live input as the
 * gateway's last status said.
 */
export function formatSources(sources: FleetView['things'][number]['sources']): string {
  return (sources ?? [])
    .map((s) => {
      const last =
        s.lastReadingAgeMs === null
          ? 'no reading yet'
          : `last ${(s.lastReadingAgeMs / 1000).toFixed(1)}s ago`;
      const counts = [
        s.reconnects ? `${s.reconnects} reconnects` : '',
        s.malformed ? `${s.malformed} malformed` : '',
        s.duplicates ? `${s.duplicates} duplicates` : '',
        s.dropped ? `${s.dropped} dropped` : '',
      ].filter(Boolean);
      return [`${s.name} ${s.state} ${s.readingsPerSec}/s ${last}`, ...counts].join(', ');
    })
    .join('; ');
}

export function formatFleet(fleet: FleetView): string[] {
  if (fleet.things.length === 0) return ['no gateways have reported status yet'];
  const now = Date.parse(fleet.now);
  const rows = fleet.things.map((thing) => [
    thing.thing,
    `${thing.model} v${thing.version ?? '-'}`,
    thing.online ? 'online' : 'offline',
    thing.state,
    ago(now, thing.lastSeen),
    `outbox ${thing.outboxDepth}, dropped ${thing.dropped}${formatRefused(thing.refused)}${thing.quarantined ? `, quarantined ${thing.quarantined} files` : ''}`,
    formatDisk(thing.disk),
    formatSources(thing.sources),
    thing.lastError ? `last error at ${thing.lastError.step}: ${thing.lastError.reason}` : '',
  ]);
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => row[i]?.length ?? 0))) ?? [];
  const lines = rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
  lines.push(
    '',
    ...fleet.versions.map((v) => `${v.model} v${v.version ?? '-'}: ${v.online}/${v.total} online`),
  );
  return lines;
}

export const fleetCommand = defineCommand({
  name: 'fleet',
  summary: 'gateways, the model version each runs, last seen, online/offline and state',
  usage: 'edgeloop fleet [--offline-after 2m] [--data-dir DIR | --aws [--stage S]] [--json]',
  examples: ['edgeloop fleet', 'edgeloop fleet --json', 'edgeloop fleet --aws --stage prod'],
  options: {
    'offline-after': {
      type: 'string',
      description: 'silence after which a gateway counts as offline',
      default: `${OFFLINE_AFTER_MS / 60_000}m`,
      valueName: 'DURATION',
    },
    ...targetOptions,
  },
  async run({ values, out }) {
    const offlineAfterMs = parseDuration(String(values['offline-after']), 'offline-after');
    const source = await statsSourceFor(values);
    const fleet = await reading(source.where, () => readFleet(source, offlineAfterMs));
    if (values.json) out(JSON.stringify(fleet));
    else for (const line of formatFleet(fleet)) out(line);
    return 0;
  },
});
