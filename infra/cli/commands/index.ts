import type { Command } from '../command.ts';
import { deviceCommand } from './device.ts';
import { fleetSimCommand } from './fleet-sim.ts';
import { topicsCommand } from './topics.ts';

export const commands: readonly Command[] = [topicsCommand, deviceCommand, fleetSimCommand];
