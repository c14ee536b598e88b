import { deviceCommand } from '../../../device/command.ts';
import type { Command } from '../../../shared/cli/command.ts';
import { demoCommand } from './demo.ts';
import { eventsCommand } from './events.ts';
import { feedbackCommand } from './feedback.ts';
import { fleetCommand } from './fleet.ts';
import { fleetSimCommand } from './fleet-sim.ts';
import { modelsCommand } from './models.ts';
import { provisionCommand } from './provision.ts';
import { scoreCommand } from './score.ts';
import { statsCommand } from './stats.ts';
import { topicsCommand } from './topics.ts';
import { trainCommand } from './train.ts';
import { upCommand } from './up.ts';
import { uploadCommand } from './upload.ts';

export const commands: readonly Command[] = [
  demoCommand,
  upCommand,
  uploadCommand,
  trainCommand,
  modelsCommand,
  scoreCommand,
  feedbackCommand,
  deviceCommand,
  fleetSimCommand,
  statsCommand,
  eventsCommand,
  fleetCommand,
  topicsCommand,
  provisionCommand,
];
