/** Mosquitto for the tests: present under CI, else its tests skip with how to get it. */
import { existsSync } from 'node:fs';
import { MOSQUITTO } from '../../bench/support/mosquitto.ts';
import { peerAvailable } from './peers.ts';

export { type Mosquitto, startMosquitto } from '../../bench/support/mosquitto.ts';

export function mosquittoAvailable(): boolean {
  return peerAvailable(
    'Mosquitto',
    existsSync(MOSQUITTO) ? undefined : `${MOSQUITTO} is not installed`,
    'apt-get install mosquitto',
  );
}
