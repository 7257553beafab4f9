import { Command, Flags } from '@oclif/core';
import { createLogger } from '../../services/shared/logger.js';
import { createShutdown } from '../../services/shared/shutdown.js';
import { nlbProcessSchema, startNlb } from '../../services/nlb/main.js';
import { serverFailure } from '../serve-support.js';

export default class Dev extends Command {
  static override summary = 'Run the local stack on loopback with embedded defaults (what `npm start` runs)';
  static override description = `Today the local stack is the NLB control plane: gRPC NLBService on 127.0.0.1:50050 and the admin endpoint (/healthz, /readyz, /metrics) on 127.0.0.1:8082, with state in .mpctl-data/nlb. Module controllers (ALB, DBLB, AILB, RTMP) and demo backends join the stack as their issues land.

Authentication is off in the local stack, and it listens on loopback only. Stops cleanly on Ctrl-C or SIGTERM.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --grpc-port 60050 --admin-port 9082',
  ];

  static override flags = {
    'grpc-port': Flags.integer({ description: 'NLB gRPC port', default: 50050, min: 0, max: 65535 }),
    'admin-port': Flags.integer({ description: 'NLB HTTP admin port', default: 8082, min: 0, max: 65535 }),
    'data-dir': Flags.string({ description: 'Where the stack keeps state', default: '.mpctl-data/nlb' }),
    'log-level': Flags.string({
      options: ['debug', 'info', 'warn', 'error'],
      default: 'warn',
      description: 'Log level of the services (logs go to stderr)',
    }),
  };

  public async run(): Promise<void> {
    const { flags } = await this.parse(Dev);
    const logger = createLogger({ level: flags['log-level'] as 'info', name: 'dev' });
    const config = nlbProcessSchema.parse({
      grpc: { host: '127.0.0.1', port: flags['grpc-port'] },
      admin: { host: '127.0.0.1', port: flags['admin-port'] },
      dataDir: flags['data-dir'],
      logLevel: flags['log-level'],
    });
    const nlb = await startNlb(config, { logger: logger.child({ service: 'nlb' }) }).catch((e: unknown) =>
      serverFailure(this, () => {
        throw e;
      }),
    );
    const shutdown = createShutdown({ logger });
    shutdown.onShutdown('nlb', () => nlb.stop());
    shutdown.installSignalHandlers();
    const g = `127.0.0.1:${nlb.grpcPort}`;
    this.log(`MarchProxy local stack is up.

  NLB gRPC      ${g}   (NLBService, grpc.health.v1, reflection)
  NLB admin     http://127.0.0.1:${nlb.adminPort}/healthz  /readyz  /metrics
  State         ${config.dataDir}

Try, in another terminal:
  ./bin/run.js call marchproxy.NLBService/GetNLBStatus --nlb ${g}
  ./bin/run.js call marchproxy.NLBService/CheckHealth --data '{"deepCheck": true}' --nlb ${g}
  curl -s http://127.0.0.1:${nlb.adminPort}/metrics | grep mp_nlb_

Module controllers and demo backends are not part of the stack yet. Press Ctrl-C to stop.`);
    await new Promise<never>(() => {});
  }
}
