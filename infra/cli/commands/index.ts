import type { Command } from '../command.ts';
import { fleetCommand } from './fleet.ts';
import { statsCommand } from './stats.ts';
import { topicsCommand } from './topics.ts';

export const commands: readonly Command[] = [topicsCommand, statsCommand, fleetCommand];
