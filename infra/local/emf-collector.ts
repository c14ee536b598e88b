/**
 * Collects CloudWatch embedded-metric-format (EMF) lines, the way CloudWatch Logs extracts
 * metrics from a Lambda's log, so the local dashboard can show the same metric names the
 * CDK dashboard uses. A metric is identified as in CloudWatch: namespace, name and the exact
 * set of dimensions.
 */

export interface MetricDatapoint {
  namespace: string;
  name: string;
  dimensions: Record<string, string>;
  /** Epoch milliseconds (the EMF `_aws.Timestamp`). */
  timestamp: number;
  value: number;
  unit?: string;
}

export interface MetricIdentity {
  namespace: string;
  name: string;
  dimensions: Record<string, string>;
}

interface EmfDirective {
  Namespace: string;
  Dimensions: string[][];
  Metrics: { Name: string; Unit?: string }[];
}

export class EmfCollector {
  private readonly points: MetricDatapoint[] = [];
  /** Lines that were not valid EMF, kept for diagnosis. */
  rejected = 0;

  constructor(private readonly maxDatapoints = 200_000) {}

  /** Records one EMF JSON line; lines that are not EMF are counted in `rejected` and ignored. */
  record(line: string): void {
    let document: unknown;
    try {
      document = JSON.parse(line);
    } catch {
      this.rejected++;
      return;
    }
    const extracted = extract(document);
    if (!extracted) {
      this.rejected++;
      return;
    }
    this.points.push(...extracted);
    if (this.points.length > this.maxDatapoints)
      this.points.splice(0, this.points.length - this.maxDatapoints);
  }

  /**
   * Datapoints of `metricName` whose dimension set is exactly `dimensions` (CloudWatch
   * semantics: {model: 'a'} does not match a datapoint recorded with {model, thing}).
   * Without `dimensions`, every datapoint of that name, whatever its dimensions.
   */
  query(metricName: string, dimensions?: Record<string, string>, namespace?: string): MetricDatapoint[] {
    return this.points.filter(
      (point) =>
        point.name === metricName &&
        (namespace === undefined || point.namespace === namespace) &&
        (dimensions === undefined || sameDimensions(point.dimensions, dimensions)),
    );
  }

  /** The distinct metrics seen so far. */
  list(): MetricIdentity[] {
    const seen = new Map<string, MetricIdentity>();
    for (const { namespace, name, dimensions } of this.points) {
      const key = JSON.stringify([namespace, name, Object.entries(dimensions).sort()]);
      if (!seen.has(key)) seen.set(key, { namespace, name, dimensions });
    }
    return [...seen.values()];
  }

  clear(): void {
    this.points.length = 0;
    this.rejected = 0;
  }
}

function sameDimensions(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isDirective(value: unknown): value is EmfDirective {
  return (
    isRecord(value) &&
    typeof value.Namespace === 'string' &&
    Array.isArray(value.Dimensions) &&
    value.Dimensions.every((set) => Array.isArray(set) && set.every((name) => typeof name === 'string')) &&
    Array.isArray(value.Metrics) &&
    value.Metrics.every((metric) => isRecord(metric) && typeof metric.Name === 'string')
  );
}

function extract(document: unknown): MetricDatapoint[] | undefined {
  if (!isRecord(document) || !isRecord(document._aws)) return undefined;
  const { Timestamp, CloudWatchMetrics } = document._aws;
  if (typeof Timestamp !== 'number' || !Array.isArray(CloudWatchMetrics)) return undefined;
  if (!CloudWatchMetrics.every(isDirective)) return undefined;
  const points: MetricDatapoint[] = [];
  for (const directive of CloudWatchMetrics) {
    // A directive without dimension sets still publishes its metrics, dimensionless.
    const dimensionSets = directive.Dimensions.length > 0 ? directive.Dimensions : [[]];
    for (const set of dimensionSets) {
      const dimensions: Record<string, string> = {};
      for (const name of set) {
        const value = document[name];
        if (typeof value !== 'string') return undefined;
        dimensions[name] = value;
      }
      for (const metric of directive.Metrics) {
        const raw = document[metric.Name];
        const values = Array.isArray(raw) ? raw : [raw];
        for (const value of values) {
          if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
          points.push({
            namespace: directive.Namespace,
            name: metric.Name,
            dimensions,
            timestamp: Timestamp,
            value,
            ...(metric.Unit ? { unit: metric.Unit } : {}),
          });
        }
      }
    }
  }
  return points;
}
