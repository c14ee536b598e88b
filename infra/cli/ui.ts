/**
 * Terminal output for edgeloop commands: colour only on a TTY with NO_COLOR unset, progress
 * bars that redraw one stderr line on a TTY and fall back to plain phase lines elsewhere (logs,
 * pipes, CI), and aligned summary tables. Nothing here writes to stdout on its own: results
 * stay on stdout, progress on stderr, so `--json` output remains one parseable line.
 */

export interface TermStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/** Colour when the stream is a terminal and the user has not set NO_COLOR (any value). */
export function colourEnabled(
  stream: Pick<TermStream, 'isTTY'>,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  return stream.isTTY === true && env.NO_COLOR === undefined;
}

export interface Palette {
  bold(text: string): string;
  dim(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  red(text: string): string;
  cyan(text: string): string;
}

const sgr = (open: number, close: number) => (text: string) => `\u001b[${open}m${text}\u001b[${close}m`;
const plain = (text: string) => text;

export function palette(enabled: boolean): Palette {
  if (!enabled) return { bold: plain, dim: plain, green: plain, yellow: plain, red: plain, cyan: plain };
  return {
    bold: sgr(1, 22),
    dim: sgr(2, 22),
    green: sgr(32, 39),
    yellow: sgr(33, 39),
    red: sgr(31, 39),
    cyan: sgr(36, 39),
  };
}

/** Text without ANSI colour sequences (for widths, and for tests). */
export function stripAnsi(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching the ESC of SGR sequences
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export interface ProgressOptions {
  /** Short name of the step, e.g. 'upload'. */
  label: string;
  /** The amount that means done (bytes, epochs, devices). */
  total: number;
  /** How the done/total pair is written (default `done/total`). */
  format?: (done: number, total: number) => string;
  stream?: TermStream;
  /** Nothing is written at all (the command's --quiet or --json). */
  silent?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface Progress {
  /** Sets the amount done and an optional detail (e.g. `loss 0.31 acc 0.92`). */
  update(done: number, detail?: string): void;
  /** Ends the bar with a final line at the last amount set (a step may end early). */
  finish(detail?: string): void;
  /** The step failed: ends a half-drawn terminal line so the error starts on its own line. */
  abandon(): void;
}

const BAR_WIDTH = 24;

/**
 * A progress bar on `stream` (stderr by default). On a TTY it redraws one line in place; on
 * anything else it writes only the final line, so logs stay readable.
 */
export function progressBar(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const colour = palette(colourEnabled(stream, options.env));
  const format = options.format ?? ((done: number, total: number) => `${done}/${total}`);
  let total = Math.max(0, options.total);
  let finished = false;
  let last = '';
  let current = 0;

  const line = (done: number, detail?: string) => {
    const ratio = total > 0 ? Math.min(1, Math.max(0, done / total)) : 0;
    const filled = Math.round(ratio * BAR_WIDTH);
    const bar = `${colour.green('█'.repeat(filled))}${colour.dim('░'.repeat(BAR_WIDTH - filled))}`;
    const percent = `${Math.round(ratio * 100)}%`.padStart(4);
    return `${colour.bold(options.label.padEnd(8))} ${bar} ${percent} ${format(done, total)}${detail ? ` ${colour.dim(detail)}` : ''}`;
  };
  const clip = (text: string) => {
    // A pseudo-terminal without a size reports 0 columns: then do not clip at all.
    const width = stream.columns && stream.columns > 20 ? stream.columns : Number.POSITIVE_INFINITY;
    return stripAnsi(text).length > width - 1 ? stripAnsi(text).slice(0, width - 1) : text;
  };

  return {
    update(done, detail) {
      if (options.silent || finished) return;
      if (done > total) total = done;
      current = done;
      if (!tty) return;
      const next = clip(line(done, detail));
      if (next === last) return;
      last = next;
      stream.write(`\r\u001b[2K${next}`);
    },
    finish(detail) {
      if (options.silent || finished) return;
      finished = true;
      if (tty) stream.write(`\r\u001b[2K${clip(line(current, detail))}\n`);
      else stream.write(`${options.label}: ${format(current, total)}${detail ? ` ${detail}` : ''}\n`);
    },
    abandon() {
      if (finished) return;
      finished = true;
      if (last !== '') stream.write('\n');
    },
  };
}

export interface TableOptions {
  /** Header row, printed bold and underlined with a rule. */
  header?: string[];
  /** Columns (by index) whose values are right-aligned, e.g. numbers. */
  alignRight?: number[];
  colour?: boolean;
}

/** An aligned text table: one string per line, cells separated by two spaces. */
export function renderTable(rows: string[][], options: TableOptions = {}): string[] {
  const colour = palette(options.colour === true);
  const all = options.header ? [options.header, ...rows] : rows;
  const widths: number[] = [];
  for (const row of all)
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, stripAnsi(cell).length);
    });
  const right = new Set(options.alignRight ?? []);
  const renderRow = (row: string[]) =>
    row
      .map((cell, i) => {
        const pad = (widths[i] ?? 0) - stripAnsi(cell).length;
        if (i === row.length - 1 && !right.has(i)) return cell;
        return right.has(i) ? `${' '.repeat(pad)}${cell}` : `${cell}${' '.repeat(pad)}`;
      })
      .join('  ')
      .trimEnd();
  const lines = rows.map(renderRow);
  if (!options.header) return lines;
  const rule = widths.map((w) => '─'.repeat(w)).join('  ');
  return [colour.bold(renderRow(options.header)), colour.dim(rule), ...lines];
}

export interface Activity {
  /** Redraws the line with this detail (TTY only). */
  update(detail: string): void;
  /** Ends with a final line (on every stream). */
  finish(detail: string): void;
  /** The step failed: ends a half-drawn terminal line so the error starts on its own line. */
  abandon(): void;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/** A step of unknown length: a spinner and a detail on a TTY, one final line elsewhere. */
export function activity(options: Omit<ProgressOptions, 'total' | 'format'>): Activity {
  const stream = options.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const colour = palette(colourEnabled(stream, options.env));
  let frame = 0;
  let finished = false;
  let drawn = false;
  const label = colour.bold(options.label.padEnd(8));
  return {
    update(detail) {
      if (options.silent || finished || !tty) return;
      frame = (frame + 1) % SPINNER.length;
      drawn = true;
      stream.write(`\r\u001b[2K${label} ${colour.cyan(SPINNER[frame] ?? '-')} ${detail}`);
    },
    finish(detail) {
      if (options.silent || finished) return;
      finished = true;
      if (tty) stream.write(`\r\u001b[2K${label} ${colour.green('✔')} ${detail}\n`);
      else stream.write(`${options.label}: ${detail}\n`);
    },
    abandon() {
      if (finished) return;
      finished = true;
      if (drawn) stream.write('\n');
    },
  };
}
