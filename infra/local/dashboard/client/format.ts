/** Number and time formatting for the page: fixed en-US so tests and screenshots agree. */

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatInt(value: number): string {
  return integer.format(value);
}

/** 0.8734 -> "87.3%". */
export function formatPercent(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined ? '—' : `${(value * 100).toFixed(digits)}%`;
}

/**
 * A percent axis tick: as many decimals as ticks `step` apart (a fraction) need to read apart,
 * so an axis from 98.5% to 100% reads 98.5%, 99.0%, ... rather than 99%, 99%, 100%.
 */
export function formatPercentTick(value: number, step: number | undefined): string {
  const digits = step && step > 0 ? Math.min(3, Math.max(0, Math.ceil(-Math.log10(step * 100) - 1e-9))) : 0;
  return formatPercent(value, digits);
}

export function formatNumber(value: number | null | undefined, digits = 2): string {
  return value === null || value === undefined ? '—' : value.toFixed(digits);
}

const pad = (n: number) => String(n).padStart(2, '0');

/** Local wall-clock time, HH:MM. */
export function formatMinute(epochMs: number): string {
  const d = new Date(epochMs);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Local wall-clock time, HH:MM:SS. */
export function formatClock(epochMs: number): string {
  const d = new Date(epochMs);
  return `${formatMinute(epochMs)}:${pad(d.getSeconds())}`;
}

/** How long before `now` an instant was: "4 s ago", "3 min ago", "2 h ago". */
export function formatAgo(iso: string, now: number): string {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 90) return `${minutes} min ago`;
  return `${Math.round(minutes / 60)} h ago`;
}
