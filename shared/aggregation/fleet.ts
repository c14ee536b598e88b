/** Fleet liveness, derived from when a gateway was last heard from (pure, so CLI and dashboard agree). */

/** A gateway that has sent nothing (status or results) for this long is shown offline. */
export const OFFLINE_AFTER_MS = 120_000;

export function isOnline(lastSeenMs: number, nowMs: number, offlineAfterMs = OFFLINE_AFTER_MS): boolean {
  return nowMs - lastSeenMs <= offlineAfterMs;
}

export interface FleetMember {
  thing: string;
  model: string;
  version: number | null;
  lastSeen: number;
}

/** Online gateways per (model, version), for the DevicesOnline metric and the fleet view. */
export function onlineByVersion(
  members: readonly FleetMember[],
  nowMs: number,
  offlineAfterMs = OFFLINE_AFTER_MS,
): { model: string; version: number | null; online: number; total: number }[] {
  const groups = new Map<string, { model: string; version: number | null; online: number; total: number }>();
  for (const member of members) {
    const key = `${member.model}#${member.version ?? '-'}`;
    let group = groups.get(key);
    if (!group) {
      group = { model: member.model, version: member.version, online: 0, total: 0 };
      groups.set(key, group);
    }
    group.total += 1;
    if (isOnline(member.lastSeen, nowMs, offlineAfterMs)) group.online += 1;
  }
  return [...groups.values()].sort(
    (a, b) => a.model.localeCompare(b.model) || (a.version ?? 0) - (b.version ?? 0),
  );
}
