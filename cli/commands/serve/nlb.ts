import { Command, Flags } from '@oclif/core';
import { loadConfig } from '../../../services/shared/config.js';
import { createLogger } from '../../../services/shared/logger.js';
import { createShutdown } from '../../../services/shared/shutdown.js';
import { NLB_ENV_MAP, nlbProcessSchema, startNlb } from '../../../services/nlb/main.js';
import { serverFailure } from '../../serve-support.js';

export default class ServeNlb extends Command {
  static override summary = 'Run the NLB control plane (gRPC NLBService and the HTTP admin endpoint)';
  static override description = `Serves NLBService on --grpc-port (default 50050) and /healthz, /readyz and /metrics on --admin-port (default 8082). Config, operator routes and deployments persist in --data-dir.

Settings come from, lowest first: built-in defaults, --config (YAML or JSON), environment (${Object.keys(NLB_ENV_MAP).join(', ')}), then flags. Tokens are best given through the environment: flags show up in process listings. With no token configured, authentication is off and a warning is logged.

Stops gracefully on SIGINT or SIGTERM.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --grpc-port 50050 --admin-port 8082 --data-dir /var/lib/marchproxy',
    'MP_ADMIN_TOKEN=$(openssl rand -hex 24) MP_MODULE_TOKEN=$(openssl rand -hex 24) <%= config.bin %> <%= command.id %>',
  ];

  static override flags = {
    config: Flags.file({
      description: 'YAML or JSON config file (see docs/nlb-control-plane.md)',
      exists: true,
    }),
    'grpc-host': Flags.string({ description: 'Address to serve gRPC on [default: 0.0.0.0]' }),
    'grpc-port': Flags.integer({
      description: 'gRPC port; 0 picks a free one [default: 50050]',
      min: 0,
      max: 65535,
    }),
    'admin-host': Flags.string({
      description: 'Address to serve /healthz, /readyz, /metrics on [default: 0.0.0.0]',
    }),
    'admin-port': Flags.integer({
      description: 'HTTP admin port; 0 picks a free one [default: 8082]',
      min: 0,
      max: 65535,
    }),
    'data-dir': Flags.string({ description: 'Directory for durable state [default: .mpctl-data/nlb]' }),
    'log-level': Flags.string({
      options: ['trace', 'debug', 'info', 'warn', 'error', 'silent'],
      description: 'Log level [default: info]',
    }),
    'heartbeat-interval': Flags.string({
      description: 'Expected heartbeat interval in seconds at start (default from config: 10)',
    }),
    'anonymous-read': Flags.boolean({ description: 'Allow read-only RPCs without a token', allowNo: true }),
    'tls-cert': Flags.file({
      description: 'PEM server certificate (enables TLS)',
      exists: true,
      dependsOn: ['tls-key'],
    }),
    'tls-key': Flags.file({ description: 'PEM server key', exists: true, dependsOn: ['tls-cert'] }),
    'tls-ca': Flags.file({ description: 'PEM CA for client certificates (mutual TLS)', exists: true }),
    'require-client-cert': Flags.boolean({
      description: 'Refuse clients without a certificate signed by --tls-ca',
    }),
  };

  public async run(): Promise<void> {
    const { flags } = await this.parse(ServeNlb);
    const config = serverFailure(this, () =>
      loadConfig(nlbProcessSchema, {
        file: flags.config,
        env: process.env,
        envMap: NLB_ENV_MAP,
        flags: {
          'grpc.host': flags['grpc-host'],
          'grpc.port': flags['grpc-port'],
          'admin.host': flags['admin-host'],
          'admin.port': flags['admin-port'],
          dataDir: flags['data-dir'],
          logLevel: flags['log-level'],
          heartbeatIntervalSeconds: flags['heartbeat-interval'],
          'auth.anonymousRead': flags['anonymous-read'],
          'tls.certFile': flags['tls-cert'],
          'tls.keyFile': flags['tls-key'],
          'tls.caFile': flags['tls-ca'],
          'tls.requireClientCert': flags['require-client-cert'] || undefined,
        },
      }),
    );
    const logger = createLogger({ level: config.logLevel, name: 'nlb' });
    const handle = await startNlb(config, { logger }).catch((e: unknown) =>
      serverFailure(this, () => {
        throw e;
      }),
    );
    // Open client connections get dataplane.drainGraceMs to finish; leave room for the rest.
    const shutdown = createShutdown({ logger, timeoutMs: config.dataplane.drainGraceMs + 10_000 });
    shutdown.onShutdown('nlb', () => handle.stop());
    shutdown.installSignalHandlers();
    await new Promise<never>(() => {});
  }
}
