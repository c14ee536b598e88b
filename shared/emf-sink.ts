/**
<<<<<<< HEAD
 * Where CloudWatch embedded-metric-format (EMF) lines go. In Lambda they go to stdout, where
 * CloudWatch Logs extracts the metrics; the embedded local stack sets a sink so it can
 * collect them for the local dashboard.
=======
 * Where EMF lines go. In Lambda they go to stdout, where CloudWatch Logs extracts the metrics;
 * the embedded local stack sets a sink and collects the very same lines in-process to feed the
 * local dashboard, so both dashboards read the same metric names.
>>>>>>> wip-agg
 */
export type EmfSink = (line: string) => void;

let sink: EmfSink | undefined;

<<<<<<< HEAD
/** Routes EMF lines to `next` (or back to stdout when undefined); returns the previous sink. */
export function setEmfSink(next: EmfSink | undefined): EmfSink | undefined {
  const previous = sink;
  sink = next;
  return previous;
}

/** Emits one EMF JSON line. */
export function emitEmf(line: string): void {
  if (sink) sink(line);
  else process.stdout.write(line.endsWith('\n') ? line : `${line}\n`);
=======
/** Routes every EMF line to `fn` (or back to stdout with undefined). */
export function setEmfSink(fn: EmfSink | undefined): void {
  sink = fn;
}

export function emitEmf(line: string): void {
  if (sink) sink(line);
  else process.stdout.write(`${line}\n`);
>>>>>>> wip-agg
}
