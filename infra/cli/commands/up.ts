import { type InvokedEvent, startLocalStack } from '../../local/stack.ts';
import { dataDirOption, defineCommand } from '../command.ts';

export const upCommand = defineCommand({
  name: 'up',
  summary: 'run the embedded local stack (S3, IoT Core, DynamoDB, rules) in the foreground',
  usage: 'edgeloop up [--data-dir DIR] [--json]',
  examples: ['edgeloop up', 'edgeloop up --data-dir /tmp/edgeloop --json'],
  options: {
    'data-dir': dataDirOption,
  },
  async run({ values, out, err }) {
    const json = values.json === true;
    const quiet = values.quiet === true;
    // With --json, stdout carries exactly one line (the endpoints); everything else is stderr.
    const log = (line: string) => (json ? err(line) : out(line));
    const stack = await startLocalStack({
      dataDir: String(values['data-dir']),
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
      out(`edgeloop local stack running on ${stack.dataDir}`);
      for (const [name, url] of Object.entries(stack.endpoints)) out(`  ${name.padEnd(9)} ${url}`);
      out('Other edgeloop commands find it through --data-dir. Press Ctrl-C to stop.');
    }

    const signal = await stopped;
    log(`${signal}: stopping the local stack`);
    await stack.stop();
    return 0;
  },
});
