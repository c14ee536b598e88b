/**
 * IoT rule `events` -> this Lambda: keep the events store current and, in AWS, announce each
 * event on EventBridge and SNS. The work is in functions/events/.
 */

import { Logger } from '@aws-lambda-powertools/logger';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { dynamoClient } from '../shared/aws.ts';
import { EdgeloopMetrics } from '../shared/metrics.ts';
import { EVENTS_METRICS_SERVICE, envVars } from '../shared/topology.ts';
import { functionEnv } from './aggregation/config.ts';
import { detailType, EVENT_SOURCE, eventDetail, openedNotice } from './events/announce.ts';
import { type EventDeps, type EventOutcome, recordEventMessage } from './events/record.ts';

const env = functionEnv('recordEvents');
const logger = new Logger({ serviceName: 'record-events' });
const metrics = new EdgeloopMetrics(EVENTS_METRICS_SERVICE);
const topicArn = process.env[envVars.eventsTopicArn];
const busName = process.env[envVars.eventBusName];
const sns = topicArn ? new SNSClient({}) : undefined;
const eventBridge = busName ? new EventBridgeClient({}) : undefined;

const announce: EventDeps['announce'] = async (event, change) => {
  if (eventBridge && busName) {
    const sent = await eventBridge.send(
      new PutEventsCommand({
        Entries: [
          {
            EventBusName: busName,
            Source: EVENT_SOURCE,
            DetailType: detailType(change),
            Detail: JSON.stringify(eventDetail(event)),
            Time: new Date(change === 'opened' ? event.start : event.end),
          },
        ],
      }),
    );
    if (sent.FailedEntryCount)
      throw new Error(`EventBridge refused the event: ${sent.Entries?.[0]?.ErrorMessage}`);
  }
  if (sns && topicArn && change === 'opened') {
    const notice = openedNotice(event);
    await sns.send(
      new PublishCommand({ TopicArn: topicArn, Subject: notice.subject, Message: notice.message }),
    );
  }
};

export async function handler(event: unknown): Promise<EventOutcome> {
  return recordEventMessage(event, {
    ddb: dynamoClient(),
    tables: { events: env.eventsTable, errors: env.errorsTable },
    metrics,
    logger,
    ...(sns || eventBridge ? { announce } : {}),
  });
}
