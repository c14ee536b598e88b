import type { Command } from '../command.ts';
import { demoCommand } from './demo.ts';
import { topicsCommand } from './topics.ts';
import { upCommand } from './up.ts';
import { uploadCommand } from './upload.ts';

export const commands: readonly Command[] = [demoCommand, upCommand, uploadCommand, topicsCommand];
