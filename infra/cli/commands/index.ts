import type { Command } from '../command.ts';
import { topicsCommand } from './topics.ts';

export const commands: readonly Command[] = [topicsCommand];
