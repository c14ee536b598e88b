import { type InvokedEvent, startLocalStack } from '../../local/stack.ts';
import { dataDirOption, defineCommand } from '../command.ts';
import { colourEnabled, palette, renderTable } from '../ui.ts';

export const upCommand = defineCommand({
  name: 'up',
  summary: 'run the embedded local stack (S3, IoT Core, DynamoDB, rules) in the foreground',
  usage: 'edgeloop up [--data-dir DIR] [--no-dashboard] [--json]',
  examples: ['edgeloop up', 'edgeloop up --data-dir /tmp/edgeloop --json'],
  options: {
    'data-dir': dataDirOption,
    'no-dashboard': { type: 'boolean', description: 'do not serve the local dashboard page' },
  },
  async run({ values, out, err }) {
    const json = values.json === true;
    const quiet = values.quiet === true;
    // With --json, stdout carries exactly one line (the endpoints); everything else is stderr.
    const log = (line: string) => (json ? err(line) : out(line));
    const stack = await startLocalStack({
      dataDir: String(values['data-dir']),
      dashboard: values['no-dashboard'] !== true,
      log: (line) => {
        if (!quiet) log(line);
      },
    });
    const stopped = new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    if (!quiet) {
      stack.events.on('invoked', ({ fn, ms, error }: InvokedEvent) =>
        log(error ? `${fn} failed after ${ms} ms: ${error}` : `${fn} done in ${ms} ms`),
      );
    }

    if (json) {
      out(JSON.stringify(stack.endpoints));
    } else {
      const colour = palette(colourEnabled(process.stdout));
      out(`edgeloop local stack running on ${stack.dataDir}`);
      const { dashboard, ...services } = stack.endpoints;
      for (const line of renderTable(Object.entries(services).map(([name, url]) => [`  ${name}`, url])))
        out(line);
      if (dashboard) out(`Dashboard: ${colour.cyan(dashboard)} (open it in a browser)`);
      out('Other edgeloop commands find it through --data-dir. Press Ctrl-C to stop.');
    }

    const signal = await stopped;
    log(`${signal}: stopping the local stack`);
    await stack.stop();
    return 0;
  },
});
