import type { Command } from '../command.ts';
import { provisionCommand } from './provision.ts';
import { topicsCommand } from './topics.ts';

export const commands: readonly Command[] = [topicsCommand, provisionCommand];
