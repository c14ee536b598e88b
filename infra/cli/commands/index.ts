import type { Command } from '../command.ts';
import { modelsCommand } from './models.ts';
import { topicsCommand } from './topics.ts';
import { trainCommand } from './train.ts';

export const commands: readonly Command[] = [topicsCommand, trainCommand, modelsCommand];
