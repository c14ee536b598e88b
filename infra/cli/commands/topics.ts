import { defineCommand } from '../../../shared/cli/command.ts';
import { rules, topics } from '../../../shared/topology.ts';

export const topicsCommand = defineCommand({
  name: 'topics',
  summary: 'print the MQTT topic templates and IoT rule SQL',
  usage: 'edgeloop topics [--json]',
  examples: ['edgeloop topics --json'],
  options: {},
  async run({ values, out }) {
    if (values.json) {
      out(JSON.stringify(topics));
      return 0;
    }
    for (const [name, template] of Object.entries(topics)) out(`${name.padEnd(8)} ${template}`);
    for (const rule of Object.values(rules)) out(`rule ${rule.ruleName}: ${rule.sql}`);
    return 0;
  },
});
