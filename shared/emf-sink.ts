/**
 * Where CloudWatch embedded-metric-format (EMF) lines go. In Lambda they go to stdout, where
 * CloudWatch Logs extracts the metrics; the embedded local stack sets a sink so it can
 * collect them for the local dashboard.
 */
export type EmfSink = (line: string) => void;

let sink: EmfSink | undefined;

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
}
