/**
 * The local stand-in for IoT topic rules: for each rule in the topology, an in-process
 * subscription with the rule's FROM filter; each message is run through the rule's SELECT
 * and the rule's function is invoked asynchronously with the result, as IoT Core does.
 */
import type { Aedes, AedesPublishPacket } from 'aedes';
import { type RuleName, rules } from '../../shared/topology.ts';
import type { FunctionInvoker } from './invoker.ts';
import { evaluateRule, parseRuleSql } from './rule-sql.ts';

export interface RuleRouter {
  close(): Promise<void>;
}

type Deliver = (packet: AedesPublishPacket, done: () => void) => void;

export async function startRuleRouter(
  aedes: Aedes,
  invoker: Pick<FunctionInvoker, 'invokeAsync'>,
  now: () => number = Date.now,
): Promise<RuleRouter> {
  const subscriptions: { filter: string; deliver: Deliver }[] = [];
  for (const name of Object.keys(rules) as RuleName[]) {
    const rule = rules[name];
    const parsed = parseRuleSql(rule.sql);
    const deliver: Deliver = (packet, done) => {
      // $SYS topics never match IoT rules.
      if (!packet.topic.startsWith('$')) {
        const event = evaluateRule(parsed, {
          topic: packet.topic,
          payload: packet.payload as Buffer,
          receivedAt: now(),
        });
        invoker.invokeAsync(rule.function, event);
      }
      done();
    };
    await new Promise<void>((resolve) => aedes.subscribe(parsed.from, deliver, () => resolve()));
    subscriptions.push({ filter: parsed.from, deliver });
  }
  return {
    async close() {
      for (const { filter, deliver } of subscriptions.splice(0)) {
        await new Promise<void>((resolve) => aedes.unsubscribe(filter, deliver, () => resolve()));
      }
    },
  };
}
