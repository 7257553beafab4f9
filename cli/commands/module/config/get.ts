import { Flags } from '@oclif/core';
import { stringify } from 'yaml';
import { ModuleCommand, compact, controllerFlags, instanceFlag } from '../../../module-command.js';

interface ConfigUpdateJson {
  configId?: string;
  configType?: string;
  configData?: string;
  checksum?: string;
  updatedAt?: string;
  metadata?: Record<string, string>;
}

/** A config section with its data decoded. */
export interface ConfigSection {
  configId: string;
  configType: string;
  checksum: string;
  updatedAt?: string;
  data: unknown;
}

function decode(c: ConfigUpdateJson): ConfigSection {
  const text = Buffer.from(c.configData ?? '', 'base64').toString('utf8');
  let data: unknown = text;
  try {
    data = text.trim() ? (JSON.parse(text) as unknown) : {};
  } catch {
    // Not JSON: keep the text as it is.
  }
  return {
    configId: c.configId ?? '',
    configType: c.configType ?? '',
    checksum: c.checksum ?? '',
    updatedAt: c.updatedAt,
    data,
  };
}

export default class ModuleConfigGet extends ModuleCommand {
  static override summary = "Show a module controller's configuration";
  static override description =
    "Sections: module (the module type's settings), scaling (instance bounds and autoscaling targets) and limits (connections per instance). People get YAML under a comment line per section; --json returns {configs: [{configId, configType, checksum, updatedAt, data}], lastUpdated}, and a section's data can be edited and given back to `mpctl module config set -f`.";

  static rpc = 'marchproxy.ModuleService/GetConfig';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --module alb',
    '<%= config.bin %> <%= command.id %> --module alb --type module --json',
  ];

  static override flags = {
    ...controllerFlags,
    instance: instanceFlag,
    type: Flags.string({ description: 'Only this section', options: ['module', 'scaling', 'limits'] }),
  };

  public async run(): Promise<{ configs: ConfigSection[]; lastUpdated?: string }> {
    const { flags } = await this.parse(ModuleConfigGet);
    const address = await this.moduleAddress(flags, flags);
    const res = await this.callModule<{ configs?: ConfigUpdateJson[]; lastUpdated?: string }>(
      flags,
      address,
      'GetConfig',
      compact({ instanceId: flags.instance, configType: flags.type }),
    );
    const configs = (res.configs ?? []).map(decode);
    if (!this.jsonEnabled()) {
      this.out(
        configs
          .map(
            (c) =>
              `# ${c.configType} (${c.configId}, sha256 ${c.checksum.slice(0, 12)}, updated ${c.updatedAt ?? '-'})\n${stringify(c.data).trimEnd()}`,
          )
          .join('\n\n'),
      );
    }
    return { configs, lastUpdated: res.lastUpdated };
  }
}
