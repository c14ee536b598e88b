/**
 * How an anomaly event is told to the world in AWS: an EventBridge event for each change
 * (source `edgeloop`, detail-type `Anomaly event opened` / `Anomaly event closed`), for rules
 * that route it anywhere, and an SNS message when one opens, for people and pagers (a closing
 * is on EventBridge only, so a subscriber is paged once per event).
 */
import type { EventItem } from './record.ts';

export const EVENT_SOURCE = 'edgeloop';

export const detailType = (change: 'opened' | 'closed') =>
  change === 'opened' ? 'Anomaly event opened' : 'Anomaly event closed';

/** The EventBridge detail: the stored event without its table keys. */
export function eventDetail(event: EventItem): Record<string, unknown> {
  const { pk: _, sk: __, ...detail } = event;
  return detail;
}

/** The SNS subject (at most 100 characters) and body of an opened event. */
export function openedNotice(event: EventItem): { subject: string; message: string } {
  const channels = event.channels.map((c) => `${c.name} ${Math.round(c.share * 100)}%`).join(', ');
  const where = event.series ? `${event.thing} / ${event.series}` : event.thing;
  return {
    subject: `edgeloop: anomaly on ${where} (${event.model})`.slice(0, 100),
    message: [
      `An anomaly event opened on ${where}, model ${event.model} v${event.version}.`,
      `Since: ${new Date(event.start).toISOString()}`,
      `Peak score: ${event.peakScore} (threshold ${event.threshold})`,
      `Sensors that drove it: ${channels || 'none named'}`,
      `Event id: ${event.eventId}`,
    ].join('\n'),
  };
}
