/**
 * docker-compose.yml, Dockerfile and .env.example, validated without a Docker engine: every
 * MarchProxy service's command (and healthcheck) parses as a real mpctl command line, the serve
 * commands' settings (file + env + flags) pass the process schemas, published ports match what
 * the NLB listens on, module gRPC ports stay on internal networks, and every env name is one the
 * code reads.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from '@oclif/core';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../services/shared/config.js';
import { NLB_ENV_MAP, nlbProcessSchema } from '../../services/nlb/main.js';
import { MODULE_ENV_MAP, moduleProcessSchema } from '../../services/modules/runtime/main.js';
import { pluginFor } from '../../services/modules/plugins.js';
import { REPO_ROOT, sourceConfig } from '../cli/support/oclif.js';

type Service = {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  env_file?: string[];
  ports?: string[];
  networks?: string[];
  volumes?: string[];
  restart?: string;
  profiles?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
};
type Compose = {
  services: Record<string, Service>;
  networks: Record<string, { internal?: boolean }>;
  volumes: Record<string, unknown>;
};

const compose = parseYaml(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), {
  merge: true,
}) as Compose;
const OUR_IMAGE = 'marchproxy/nlb:local';
const ours = Object.entries(compose.services).filter(([, s]) => s.image === OUR_IMAGE);
const envExample = Object.fromEntries(
  readFileSync(join(REPO_ROOT, '.env.example'), 'utf8')
    .split('\n')
    .filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
);

/** Container paths of read-only config mounts → the repository directory they come from. */
function mountMap(service: Service): Array<[string, string]> {
  return (service.volumes ?? [])
    .filter((v) => v.startsWith('./'))
    .map((v) => {
      const [src, dst] = v.split(':');
      return [dst, join(REPO_ROOT, src)];
    });
}

function localPath(service: Service, arg: string): string {
  for (const [dst, src] of mountMap(service))
    if (arg.startsWith(`${dst}/`)) return join(src, arg.slice(dst.length));
  return arg;
}

/** Parses `argv` as mpctl does: the longest command id prefix, then its flags and args, strictly. */
async function parseMpctl(argv: string[], service: Service) {
  const config = await sourceConfig();
  let id = '';
  let rest = argv;
  for (let n = argv.length; n > 0; n--) {
    const candidate = argv.slice(0, n).join(':');
    if (!argv.slice(0, n).some((a) => a.startsWith('-')) && config.findCommand(candidate)) {
      id = candidate;
      rest = argv.slice(n);
      break;
    }
  }
  expect(id, `${argv.join(' ')} is no mpctl command`).not.toBe('');
  const cmd = await config.findCommand(id)!.load();
  const parsed = await Parser.parse(
    rest.map((a) => localPath(service, a)),
    { flags: { ...cmd.baseFlags, ...cmd.flags }, args: cmd.args ?? {}, strict: true },
  );
  return { id, flags: parsed.flags as Record<string, unknown>, args: parsed.args as Record<string, unknown> };
}

/** Every env name the code reads: the process env maps and every mpctl flag's `env`. */
async function knownEnvNames(): Promise<Set<string>> {
  const names = new Set([...Object.keys(NLB_ENV_MAP), ...Object.keys(MODULE_ENV_MAP)]);
  const config = await sourceConfig();
  for (const c of config.commands)
    for (const f of Object.values({ ...(await c.load()).baseFlags, ...(await c.load()).flags }))
      if (typeof f.env === 'string') names.add(f.env);
  return names;
}

function containerPort(mapping: string): number {
  return Number(mapping.split(':').at(-1));
}

describe('docker-compose.yml', () => {
  it('runs an NLB, one controller per module type with ALB blue and green, and demo backends', () => {
    const modules = ours
      .filter(([, s]) => s.command?.slice(0, 2).join(' ') === 'serve module')
      .map(([, s]) => `${s.command![2]}@${s.command![s.command!.indexOf('--version') + 1]}`);
    expect(modules.sort()).toEqual(['ailb@1.0', 'alb@1.0', 'alb@2.0', 'dblb@1.0', 'rtmp@1.0']);
    expect(ours.filter(([, s]) => s.command?.slice(0, 2).join(' ') === 'serve nlb')).toHaveLength(1);
    expect(
      Object.values(compose.services).filter((s) => s.image !== OUR_IMAGE).length,
    ).toBeGreaterThanOrEqual(2);
    expect(compose.services.nlb.build).toBe('.');
  });

  it("every MarchProxy service's command and healthcheck is a valid mpctl command line", async () => {
    for (const [name, service] of ours) {
      expect(service.command, name).toBeInstanceOf(Array);
      await parseMpctl(service.command!, service);
      if (service.healthcheck) {
        const [kind, bin, ...argv] = service.healthcheck.test;
        expect([kind, bin], name).toEqual(['CMD', 'mpctl']);
        await parseMpctl(argv, service);
      }
    }
  });

  it('has healthchecks and restart policies on long-running services, tokens from the env file', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.profiles) continue; // one-shot jobs
      expect(service.restart, name).toMatch(/^(unless-stopped|always|on-failure)/);
      if (service.image === OUR_IMAGE) {
        expect(service.healthcheck, name).toBeDefined();
        expect(service.env_file, name).toEqual(['.env']);
        expect(
          Object.keys(service.environment ?? {}).filter((k) => /TOKEN/.test(k)),
          name,
        ).toEqual([]);
      }
      for (const dep of Object.keys(service.depends_on ?? {}))
        expect(compose.services[dep], `${name} → ${dep}`).toBeDefined();
    }
  });

  it('uses only env names the code reads, and .env.example sets every token', async () => {
    const known = await knownEnvNames();
    for (const [name, service] of ours)
      for (const key of Object.keys(service.environment ?? {}))
        expect(known.has(key), `${name}: ${key}`).toBe(true);
    for (const key of Object.keys(envExample)) expect(known.has(key), `.env.example: ${key}`).toBe(true);
    for (const token of ['MP_ADMIN_TOKEN', 'MP_MODULE_TOKEN', 'MP_READ_TOKEN', 'MPCTL_TOKEN'])
      expect(envExample[token]?.length, token).toBeGreaterThanOrEqual(16);
    expect(envExample.MPCTL_TOKEN).toBe(envExample.MP_ADMIN_TOKEN);
  });

  it('the NLB publishes exactly its gRPC, admin and DESIGN.md §8 production listener ports', async () => {
    const nlb = compose.services.nlb;
    const { flags } = await parseMpctl(nlb.command!, nlb);
    const config = loadConfig(nlbProcessSchema, {
      file: flags.config as string,
      env: { ...envExample, ...nlb.environment },
      envMap: NLB_ENV_MAP,
      flags: { 'grpc.port': flags['grpc-port'], 'admin.port': flags['admin-port'] },
    });
    expect(config.auth.adminToken).toBe(envExample.MP_ADMIN_TOKEN);
    expect(config.auth.moduleToken).toBe(envExample.MP_MODULE_TOKEN);
    const listenerPorts = (config.listeners ?? []).map((l) => l.port).sort((a, b) => a - b);
    expect(listenerPorts).toEqual([80, 443, 1935, 3306, 5432, 7000]);
    const published = (nlb.ports ?? []).map(containerPort).sort((a, b) => a - b);
    expect(published).toEqual([config.grpc.port, config.admin.port, ...listenerPorts].sort((a, b) => a - b));
    expect(config.grpc.port).toBe(50050);
    expect(config.admin.port).toBe(8082);
    // The data dir lies on the named volume.
    expect(
      nlb.volumes?.some((v) => v.startsWith('nlb-data:') && config.dataDir.startsWith(v.split(':')[1])),
    ).toBe(true);
    expect(nlb.networks).toContain('edge');
  });

  it("module controllers serve on their type's default port, advertise their service name, publish nothing", async () => {
    const internal = new Set(
      Object.entries(compose.networks)
        .filter(([, n]) => n.internal)
        .map(([k]) => k),
    );
    for (const [name, service] of ours.filter(([, s]) => s.command?.[1] === 'module')) {
      const { flags, args } = await parseMpctl(service.command!, service);
      const config = loadConfig(moduleProcessSchema, {
        env: { ...envExample, ...service.environment },
        envMap: MODULE_ENV_MAP,
        flags: {
          type: args.type,
          version: flags.version,
          instances: flags.instances,
          'grpc.port': flags.port,
          nlb: flags.nlb,
          provider: flags.provider,
          advertiseAddress: flags['advertise-address'],
        },
      });
      expect(config.grpc.port, name).toBe(pluginFor(config.type).defaultPort);
      expect(config.advertiseAddress, name).toBe(`${name}:${config.grpc.port}`);
      expect(config.trafficHost, name).toBe(name);
      expect(config.nlb, name).toBe(`nlb:${compose.services.nlb.ports!.map(containerPort)[0]}`);
      expect(config.nlbToken, name).toBe(envExample.MP_MODULE_TOKEN);
      expect(service.ports, name).toBeUndefined();
      for (const net of service.networks ?? []) expect(internal.has(net), `${name} on ${net}`).toBe(true);
      expect(compose.services.nlb.networks, name).toEqual(expect.arrayContaining(['control']));
      const volume = service.volumes?.[0]?.split(':')[0];
      expect(volume && volume in compose.volumes, name).toBe(true);
      expect(config.dataDir.startsWith(service.volumes![0].split(':')[1]), name).toBe(true);
    }
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  it('is multi-stage, runs as a non-root user, has mpctl as entrypoint and a /healthz healthcheck', () => {
    expect(text.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(2);
    const users = [...text.matchAll(/^USER (\S+)/gm)].map((m) => m[1]);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)$/);
    expect(text).toMatch(/^ENTRYPOINT \["mpctl"\]$/m);
    expect(text).toMatch(/^HEALTHCHECK [\s\S]*\/healthz/m);
    expect(text).toMatch(/MP_NLB_ADMIN_PORT\|\|8082/);
    // It copies what the build needs and nothing it does not have.
    for (const m of text.matchAll(/^COPY (?!--from)(\S+)/gm))
      expect(existsSync(join(REPO_ROOT, m[1])), m[1]).toBe(true);
  });
});
