/**
 * The one price table the fleet-scale bench and DEPLOY.md's cost section use.
 *
 * Source: the public AWS pricing pages for us-east-1, on-demand list prices, first tier:
 *   https://aws.amazon.com/iot-core/pricing/            (messaging, rules engine, Basic Ingest)
 *   https://aws.amazon.com/kinesis/data-streams/pricing/ (provisioned mode)
 *   https://aws.amazon.com/lambda/pricing/               (arm64)
 *   https://aws.amazon.com/dynamodb/pricing/on-demand/   (after the November 2024 price cut)
 * Date: as published in 2025 and taken into this file on 2026-12-02. This machine has no
 * internet, so the figures were not re-read online that day: check them before you budget.
 */
export const PRICES = {
  source:
    'AWS public pricing pages, us-east-1 list prices (IoT Core, Kinesis Data Streams, Lambda arm64, DynamoDB on-demand)',
  date: '2026-12-02 (prices as published in 2025; not re-read online from this machine)',
  iot: {
    /** Per message through the broker, metered in 5 KB units. Basic Ingest pays none. */
    messagePerMillion: 1.0,
    meteringBytes: 5 * 1024,
    /** Per rule triggered and per action executed; both metered in 5 KB units of the message. */
    ruleTriggeredPerMillion: 0.15,
    actionExecutedPerMillion: 0.15,
  },
  kinesis: {
    shardHour: 0.015,
    /** PUT payload units are 25 KB each. */
    putUnitPerMillion: 0.014,
    putUnitBytes: 25 * 1024,
  },
  lambda: {
    requestPerMillion: 0.2,
    /** arm64 */
    gbSecond: 0.000_013_333_4,
  },
  dynamodb: {
    writeRequestUnitPerMillion: 0.625,
    readRequestUnitPerMillion: 0.125,
  },
} as const;

/** What one second of a design's traffic uses, at one fleet size. */
export interface UsagePerSecond {
  inferences: number;
  /** Messages through the broker (0 with Basic Ingest), in 5 KB units. */
  brokerMessageUnits: number;
  /** Rules triggered and actions executed, in 5 KB units. */
  ruleUnits: number;
  actionUnits: number;
  kinesisShards: number;
  kinesisPutUnits: number;
  lambdaRequests: number;
  lambdaGbSeconds: number;
  dynamoWriteUnits: number;
  dynamoReadUnits: number;
}

export type CostBreakdown = Record<
  'messaging' | 'rules' | 'stream' | 'lambda' | 'dynamodb' | 'total',
  number
>;

/** US dollars per million inferences, by service and in total. */
export function costPerMillionInferences(usage: UsagePerSecond): CostBreakdown {
  const perSecond = {
    messaging: (usage.brokerMessageUnits * PRICES.iot.messagePerMillion) / 1e6,
    rules:
      (usage.ruleUnits * PRICES.iot.ruleTriggeredPerMillion +
        usage.actionUnits * PRICES.iot.actionExecutedPerMillion) /
      1e6,
    stream:
      (usage.kinesisShards * PRICES.kinesis.shardHour) / 3600 +
      (usage.kinesisPutUnits * PRICES.kinesis.putUnitPerMillion) / 1e6,
    lambda:
      (usage.lambdaRequests * PRICES.lambda.requestPerMillion) / 1e6 +
      usage.lambdaGbSeconds * PRICES.lambda.gbSecond,
    dynamodb:
      (usage.dynamoWriteUnits * PRICES.dynamodb.writeRequestUnitPerMillion +
        usage.dynamoReadUnits * PRICES.dynamodb.readRequestUnitPerMillion) /
      1e6,
  };
  const millions = usage.inferences / 1e6;
  const per = (value: number) => value / millions;
  const breakdown = {
    messaging: per(perSecond.messaging),
    rules: per(perSecond.rules),
    stream: per(perSecond.stream),
    lambda: per(perSecond.lambda),
    dynamodb: per(perSecond.dynamodb),
  };
  return { ...breakdown, total: Object.values(breakdown).reduce((sum, value) => sum + value, 0) };
}

/** IoT Core's metering: 5 KB units, at least one. */
export const iotUnits = (bytes: number) => Math.max(1, Math.ceil(bytes / PRICES.iot.meteringBytes));
/** Kinesis PUT payload units: 25 KB units, at least one. */
export const kinesisPutUnits = (bytes: number) => Math.max(1, Math.ceil(bytes / PRICES.kinesis.putUnitBytes));
