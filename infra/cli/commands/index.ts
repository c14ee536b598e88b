import type { Command } from '../command.ts';
import { topicsCommand } from './topics.ts';
import { upCommand } from './up.ts';

export const commands: readonly Command[] = [topicsCommand, upCommand];
