import { afterEach, describe, expect, it } from 'vitest';
import { setEmfSink } from '../../shared/emf-sink.ts';
import { EdgeloopMetrics, emitTrainingMetrics } from '../../shared/metrics.ts';
import { METRICS_NAMESPACE, metricNames } from '../../shared/topology.ts';

afterEach(() => setEmfSink(undefined));

interface EmfDocument {
  _aws: {
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [key: string]: unknown;
}

describe('EMF metrics through the sink', () => {
  it('writes one EMF document per publish with its own dimensions, in the edgeloop namespace', () => {
    // Prepare
    const lines: string[] = [];
    setEmfSink((line) => lines.push(line));
    const metrics = new EdgeloopMetrics('unit-test');

    // Act
    metrics.publishWith({ model: 'm', version: '2' }, (m) =>
      m.put('inferences', 500).put('lowConfidence', 12),
    );
    emitTrainingMetrics(metrics, { model: 'm', succeeded: false, durationMs: 1234, accuracy: 0.91 });
    metrics.publishStoredMetrics(); // nothing stored: nothing written

    // Assess
    const [results, training] = lines.map((line) => JSON.parse(line) as EmfDocument);
    expect(lines).toHaveLength(2);
    expect(results?._aws.CloudWatchMetrics[0]?.Namespace).toBe(METRICS_NAMESPACE);
    expect(results?._aws.CloudWatchMetrics[0]?.Dimensions[0]).toEqual(
      expect.arrayContaining(['model', 'version']),
    );
    expect(results).toMatchObject({
      model: 'm',
      version: '2',
      [metricNames.inferences]: 500,
      [metricNames.lowConfidence]: 12,
    });
    expect(training).toMatchObject({
      model: 'm',
      [metricNames.trainingRuns]: 1,
      [metricNames.trainingFailures]: 1,
      [metricNames.trainingDurationMs]: 1234,
      [metricNames.trainingAccuracy]: 0.91,
    });
    expect(training).not.toHaveProperty('version');
  });

  it('skips values that are not finite numbers instead of emitting a broken document', () => {
    // Prepare
    const lines: string[] = [];
    setEmfSink((line) => lines.push(line));

    // Act
    new EdgeloopMetrics('unit-test').publishWith({ model: 'm' }, (m) =>
      m.put('drift', Number.NaN).put('inferences', 1),
    );

    // Assess
    const document = JSON.parse(lines[0] ?? '{}') as EmfDocument;
    expect(document).not.toHaveProperty(metricNames.drift);
    expect(document[metricNames.inferences]).toBe(1);
  });
});
