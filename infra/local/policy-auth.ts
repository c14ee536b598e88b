/**
 * The per-thing IoT policy (thingPolicy in shared/topology.ts), enforced by the local broker
 * as AWS IoT Core enforces it: a client's id is its thing name; it may connect only as
 * itself, publish only where the policy allows it (otherwise it is disconnected, as IoT Core
 * does), subscribe only where allowed (otherwise a negative SUBACK), and receive only
 * messages on topics it may receive. The stack's own in-process publishes and subscriptions
 * (rule router, Publish shim) go through aedes.publish/aedes.subscribe and are trusted.
 */
import type { AedesOptions, AuthenticateError } from 'aedes';
import { policyAllows, THING_NAME_PATTERN } from '../../shared/topology.ts';

export interface PolicyDecision {
  action: 'connect' | 'publish' | 'subscribe' | 'receive';
  thing: string;
  resource: string;
}

/** Pure checks, one per MQTT action. */
export const thingPolicyChecks = {
  connect: (clientId: string) =>
    THING_NAME_PATTERN.test(clientId) && policyAllows('iot:Connect', clientId, clientId),
  publish: (thing: string, topic: string) => policyAllows('iot:Publish', thing, topic),
  subscribe: (thing: string, filter: string) => policyAllows('iot:Subscribe', thing, filter),
  receive: (thing: string, topic: string) => policyAllows('iot:Receive', thing, topic),
};

const NOT_AUTHORIZED = 5;

/** aedes hooks enforcing the thing policy; `onDeny` hears about every refusal. */
export function policyHooks(
  onDeny: (decision: PolicyDecision) => void = () => {},
): Required<
  Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>
> {
  return {
    authenticate(client, _username, _password, done) {
      if (thingPolicyChecks.connect(client.id)) return done(null, true);
      onDeny({ action: 'connect', thing: client.id, resource: client.id });
      const error = new Error(
        `client id '${client.id}' is not a thing name the policy lets connect`,
      ) as AuthenticateError;
      error.returnCode = NOT_AUTHORIZED;
      done(error, false);
    },
    authorizePublish(client, packet, done) {
      // client is null only for a will published after its client is gone: judged at connect.
      if (!client) return done(null);
      if (thingPolicyChecks.publish(client.id, packet.topic)) return done(null);
      onDeny({ action: 'publish', thing: client.id, resource: packet.topic });
      done(new Error(`thing '${client.id}' may not publish to '${packet.topic}'`));
    },
    authorizeSubscribe(client, subscription, done) {
      if (thingPolicyChecks.subscribe(client.id, subscription.topic)) return done(null, subscription);
      onDeny({ action: 'subscribe', thing: client.id, resource: subscription.topic });
      done(null, null);
    },
    authorizeForward(client, packet) {
      if (thingPolicyChecks.receive(client.id, packet.topic)) return packet;
      onDeny({ action: 'receive', thing: client.id, resource: packet.topic });
      return null;
    },
  };
}
