/**
 * EMF metrics through Powertools for AWS Lambda, with the output routed through emf-sink so
 * that the local stack can collect the same lines. Powertools v2 always writes EMF to its own
 * Console (the `logger` option only carries its warnings), so the subclass below overrides the
 * one flush method and hands the serialized EMF object to emitEmf instead.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MetricUnit as MetricUnitValue } from '@aws-lambda-powertools/metrics/types';
import { emitEmf } from './emf-sink.ts';
import { METRICS_NAMESPACE, metricNames } from './topology.ts';

export { MetricUnit };
export type MetricName = keyof typeof metricNames;

export class EdgeloopMetrics extends Metrics {
  constructor(serviceName: string) {
    super({ namespace: METRICS_NAMESPACE, serviceName });
  }

  /** Adds a metric by its topology key, so no metric name is spelled outside topology.ts. */
  put(name: MetricName, value: number, unit: MetricUnitValue = MetricUnit.Count): this {
    if (Number.isFinite(value)) this.addMetric(metricNames[name], unit, value);
    return this;
  }

  /** Writes the stored metrics as one EMF line to the sink (stdout in Lambda), then clears them. */
  override publishStoredMetrics(): this {
    try {
      if (this.hasStoredMetrics() && !this.isDisabled()) emitEmf(JSON.stringify(this.serializeMetrics()));
    } finally {
      this.clearMetrics();
      this.clearDimensions();
      this.clearMetadata();
    }
    return this;
  }

  /** Publishes one EMF line with its own dimensions (e.g. model and version). */
  publishWith(dimensions: Record<string, string>, fill: (metrics: this) => void): void {
    for (const [name, value] of Object.entries(dimensions)) this.addDimension(name, value);
    fill(this);
    this.publishStoredMetrics();
  }
}

/** The training side's metrics (runs, failures, duration, accuracy), per model, as one EMF line. */
export function emitTrainingMetrics(
  metrics: EdgeloopMetrics,
  run: { model: string; succeeded: boolean; durationMs: number; accuracy?: number },
): void {
  metrics.publishWith({ model: run.model }, (m) => {
    m.put('trainingRuns', 1);
    m.put('trainingFailures', run.succeeded ? 0 : 1);
    m.put('trainingDurationMs', run.durationMs, MetricUnit.Milliseconds);
    if (run.accuracy !== undefined) m.put('trainingAccuracy', run.accuracy, MetricUnit.NoUnit);
  });
}
