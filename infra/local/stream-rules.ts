/**
 * The local stand-in for the fleet-scale results rule (streamRules in the topology): gateways
 * publish by Basic Ingest to `$aws/rules/<rule>/<topic>`; as in IoT Core the rule sees the
 * topic without that prefix, runs the same SQL, and its Kinesis action puts the selected
 * JSON on the stream with the partition key from the action's substitution template. A put
 * that fails goes to `onError` (the rule's error action in AWS). The publisher's PUBACK waits
 * for the put, so a fleet that outruns the local stream is slowed rather than buffered;
 * at most PUTS_IN_FLIGHT puts go to kinesalite at once, the rest wait their turn (a
 * thousand gateways' puts at once would otherwise queue for sockets until they time out).
 */
import { type KinesisClient, PutRecordCommand } from '@aws-sdk/client-kinesis';
import type { Aedes, AedesPublishPacket } from 'aedes';
import { errorMessage } from '../../shared/errors.ts';
import { LOCAL_STAGE, ruleNameFor, streamRules, streams } from '../../shared/topology.ts';
import { evaluateRule, parseRuleSql, parseSubstitution } from './rule-sql.ts';

export interface StreamRuleError {
  rule: string;
  topic: string;
  error: string;
}

export interface StreamRuleRouter {
  /** Puts in flight right now (the stack's idle() waits for none). */
  inFlight(): number;
  close(): Promise<void>;
}

/** The Basic Ingest prefix of a local stream rule: `$aws/rules/<rule>_local/`. */
export const localBasicIngestPrefix = (ruleName: string) =>
  `$aws/rules/${ruleNameFor(ruleName, LOCAL_STAGE)}/`;

type Deliver = (packet: AedesPublishPacket, done: () => void) => void;

const PUTS_IN_FLIGHT = 16;

export async function startStreamRuleRouter(options: {
  aedes: Aedes;
  kinesis: KinesisClient;
  onError: (error: StreamRuleError) => void;
  now?: () => number;
}): Promise<StreamRuleRouter> {
  const { aedes, kinesis, onError } = options;
  const now = options.now ?? Date.now;
  let inFlight = 0;
  let running = 0;
  const waiting: (() => void)[] = [];
  /** Runs `put` once fewer than PUTS_IN_FLIGHT are running. */
  const limited = async <T>(put: () => Promise<T>): Promise<T> => {
    // A finished put hands its slot straight to the longest waiting one.
    if (running >= PUTS_IN_FLIGHT) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await put();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
  const subscriptions: { filter: string; deliver: Deliver }[] = [];
  for (const rule of Object.values(streamRules)) {
    const parsed = parseRuleSql(rule.sql);
    const stream = streams[rule.stream];
    const partitionKey = parseSubstitution(stream.partitionKey);
    const prefix = localBasicIngestPrefix(rule.ruleName);
    const deliver: Deliver = (packet, done) => {
      const input = {
        topic: packet.topic.slice(prefix.length),
        payload: packet.payload as Buffer,
        receivedAt: now(),
      };
      const selected = evaluateRule(parsed, input);
      inFlight++;
      limited(() =>
        kinesis.send(
          new PutRecordCommand({
            StreamName: stream.localName,
            PartitionKey: partitionKey(input),
            Data: Buffer.from(JSON.stringify(selected)),
          }),
        ),
      )
        .catch((error: unknown) =>
          onError({ rule: rule.ruleName, topic: packet.topic, error: errorMessage(error) }),
        )
        .finally(() => {
          inFlight--;
          done();
        });
    };
    const filter = `${prefix}${parsed.from}`;
    await new Promise<void>((resolve) => aedes.subscribe(filter, deliver, () => resolve()));
    subscriptions.push({ filter, deliver });
  }
  return {
    inFlight: () => inFlight,
    async close() {
      for (const { filter, deliver } of subscriptions.splice(0)) {
        await new Promise<void>((resolve) => aedes.unsubscribe(filter, deliver, () => resolve()));
      }
    },
  };
}
