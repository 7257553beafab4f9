import { Command, Flags } from '@oclif/core';
import { basename, dirname, relative } from 'node:path';
import { DEFAULT_CERT_HOSTS, hostProblems, writeLocalPki } from '../../local-pki.js';

export default class CertsInit extends Command {
  static override summary =
    'Create a local CA and server and client certificates for the local stack (mutual TLS)';
  static override description = `Writes ca.crt/ca.key, server.crt/server.key (valid for --hosts) and client.crt/client.key (for mutual TLS) into --dir: ECDSA P-256, the CA valid for 10 years, the others for 825 days. Keys are written 0600, the directory 0700. Existing files are kept unless --force.

\`mpctl dev --tls\` uses .mpctl-data/certs (and runs this when it is empty): TLS with client certificates on the NLB and the module controllers, and between them; the CLI finds the files through the config file \`mpctl dev\` writes.`;

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> --hosts 127.0.0.1,localhost,nlb.internal --force',
  ];

  static override enableJsonFlag = true;

  static override flags = {
    dir: Flags.string({ description: 'Where to write the files', default: '.mpctl-data/certs' }),
    hosts: Flags.string({
      description: 'Comma-separated IP addresses and DNS names the server certificate is valid for',
      default: DEFAULT_CERT_HOSTS.join(','),
    }),
    force: Flags.boolean({ description: 'Replace existing files (a new CA: re-issue every certificate)' }),
  };

  public async run(): Promise<Record<string, string | string[]>> {
    const { flags } = await this.parse(CertsInit);
    const hosts = flags.hosts
      .split(',')
      .map((h) => h.trim().replace(/^\[(.*)\]$/, '$1'))
      .filter(Boolean);
    const problems = hostProblems(hosts);
    if (problems.length)
      this.error(`--hosts: ${problems.join('; ')} (e.g. --hosts 127.0.0.1,localhost,::1)`, { exit: 2 });
    let paths;
    try {
      paths = writeLocalPki(flags.dir, hosts, flags.force);
    } catch (e) {
      this.error(`cannot create the certificates: ${(e as Error).message}`, { exit: 1 });
    }
    if (!this.jsonEnabled()) {
      const p = (f: string) => relative(process.cwd(), f) || f;
      // `mpctl dev --tls` looks in <data-dir>/certs.
      const dataDir = basename(flags.dir) === 'certs' ? dirname(p(flags.dir)) : undefined;
      const devLine =
        dataDir === undefined
          ? ''
          : `  ${this.config.bin} dev --tls${dataDir === '.mpctl-data' ? '' : ` --data-dir ${dataDir}`}\n`;
      this.log(`Created a local CA and certificates in ${p(flags.dir)}/ (keys 0600):

  CA       ${p(paths.caCert)}       key ${p(paths.caKey)} (keep it private: it signs certificates)
  server   ${p(paths.serverCert)}   key ${p(paths.serverKey)}, for ${hosts.join(', ')}
  client   ${p(paths.clientCert)}   key ${p(paths.clientKey)}, for mutual TLS

Use them:
${devLine}  ${this.config.bin} serve nlb --tls-cert ${p(paths.serverCert)} --tls-key ${p(paths.serverKey)} --tls-ca ${p(paths.caCert)} --require-client-cert
  ${this.config.bin} status --ca ${p(paths.caCert)} --cert ${p(paths.clientCert)} --key ${p(paths.clientKey)}`);
    }
    return { dir: flags.dir, hosts, ...paths };
  }
}
