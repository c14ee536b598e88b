import { afterEach, describe, expect, it } from 'vitest';
import { EmfCollector } from '../../infra/local/emf-collector.ts';
import { emitEmf, setEmfSink } from '../../shared/emf-sink.ts';

function emfLine(
  fields: Record<string, unknown>,
  dimensions: string[][],
  metrics: string[],
  timestamp = 1000,
) {
  return JSON.stringify({
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [
        {
          Namespace: 'edgeloop',
          Dimensions: dimensions,
          Metrics: metrics.map((Name) => ({ Name, Unit: 'Count' })),
        },
      ],
    },
    ...fields,
  });
}

describe('EMF collector', () => {
  afterEach(() => {
    setEmfSink(undefined);
  });

  it('extracts one datapoint per metric value and dimension set', () => {
    // Prepare
    const collector = new EmfCollector();
    const line = emfLine(
      { model: 'm', thing: 't1', Inferences: [3, 4], service: 'x' },
      [['model'], ['model', 'thing']],
      ['Inferences'],
    );

    // Act
    collector.record(line);

    // Assess
    expect(collector.query('Inferences', { model: 'm' }).map((point) => point.value)).toEqual([3, 4]);
    expect(collector.query('Inferences', { model: 'm', thing: 't1' })).toHaveLength(2);
    expect(collector.query('Inferences')).toHaveLength(4);
    expect(collector.query('Inferences', { model: 'other' })).toEqual([]);
    expect(collector.query('Inferences', { model: 'm' })[0]).toMatchObject({
      namespace: 'edgeloop',
      timestamp: 1000,
      unit: 'Count',
    });
  });

  it('matches dimension sets exactly, as CloudWatch identifies metrics', () => {
    // Prepare
    const collector = new EmfCollector();
    collector.record(
      emfLine({ model: 'm', thing: 't', TrainingRuns: 1 }, [['model', 'thing']], ['TrainingRuns']),
    );

    // Act
    const byModelOnly = collector.query('TrainingRuns', { model: 'm' });

    // Assess
    expect(byModelOnly).toEqual([]);
    expect(collector.list()).toEqual([
      { namespace: 'edgeloop', name: 'TrainingRuns', dimensions: { model: 'm', thing: 't' } },
    ]);
  });

  it('records a directive without dimensions as dimensionless metrics', () => {
    // Prepare
    const collector = new EmfCollector();

    // Act
    collector.record(emfLine({ DevicesOnline: 2 }, [], ['DevicesOnline']));

    // Assess
    expect(collector.query('DevicesOnline', {}).map((point) => point.value)).toEqual([2]);
  });

  it('counts lines that are not EMF and keeps nothing from them', () => {
    // Prepare
    const collector = new EmfCollector();

    // Act
    collector.record('plain log text');
    collector.record(JSON.stringify({ message: 'a structured log line' }));
    collector.record(emfLine({ Inferences: 'many' }, [], ['Inferences']));
    collector.record(emfLine({ Inferences: 1 }, [['model']], ['Inferences']));

    // Assess
    expect(collector.rejected).toBe(4);
    expect(collector.list()).toEqual([]);
  });

  it('keeps only the newest datapoints beyond its cap', () => {
    // Prepare
    const collector = new EmfCollector(3);

    // Act
    for (let value = 1; value <= 5; value++) collector.record(emfLine({ X: value }, [], ['X']));

    // Assess
    expect(collector.query('X').map((point) => point.value)).toEqual([3, 4, 5]);
  });

  it('receives what emitEmf writes once it is the sink', () => {
    // Prepare
    const collector = new EmfCollector();
    setEmfSink((line) => collector.record(line));

    // Act
    emitEmf(emfLine({ Inferences: 7 }, [], ['Inferences']));

    // Assess
    expect(collector.query('Inferences').map((point) => point.value)).toEqual([7]);
  });
});
