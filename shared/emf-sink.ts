/**
 * Where EMF lines go. In Lambda they go to stdout, where CloudWatch Logs extracts the metrics;
 * the embedded local stack sets a sink and collects the very same lines in-process to feed the
 * local dashboard, so both dashboards read the same metric names.
 */
export type EmfSink = (line: string) => void;

let sink: EmfSink | undefined;

/** Routes every EMF line to `fn` (or back to stdout with undefined). */
export function setEmfSink(fn: EmfSink | undefined): void {
  sink = fn;
}

export function emitEmf(line: string): void {
  if (sink) sink(line);
  else process.stdout.write(`${line}\n`);
}
