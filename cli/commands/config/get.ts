import { Args } from '@oclif/core';
import { stringify } from 'yaml';
import { SECTION_NAMES } from '../../../services/nlb/domain/nlb-config.js';
import { RpcCommand } from '../../rpc-command.js';

/** GetNLBConfigResponse in protobuf JSON. */
interface GetConfigJson {
  configs?: Array<{
    configId?: string;
    configType?: string;
    configData?: string;
    checksum?: string;
    updatedAt?: string;
  }>;
  lastUpdated?: string;
}

/** One section as `config get --json` returns it: the body decoded. */
export interface ConfigSectionJson {
  section: string;
  checksum?: string;
  updatedAt?: string;
  config: unknown;
}

export default class ConfigGet extends RpcCommand {
  static rpc = 'marchproxy.NLBService/GetNLBConfig';
  static override summary = "Show the NLB's config sections (all, or one) as YAML";
  static override description =
    'Prints each section as YAML under a "# section" comment; the output of one section is valid input for `mpctl config set <section> -f`. With --json: {"sections": [{"section", "checksum", "updatedAt", "config"}], "lastUpdated"}.';

  static override examples = [
    '<%= config.bin %> <%= command.id %>',
    '<%= config.bin %> <%= command.id %> heartbeat',
    '<%= config.bin %> <%= command.id %> scaling --json',
  ];

  static override args = {
    section: Args.string({ description: 'Only this section', options: [...SECTION_NAMES] }),
  };

  public async run(): Promise<{ sections: ConfigSectionJson[]; lastUpdated?: string }> {
    const { args, flags } = await this.parse(ConfigGet);
    const res = await this.callNlb<GetConfigJson>(flags, 'GetNLBConfig', { configType: args.section ?? '' });
    const sections = (res.configs ?? []).map((c) => {
      const text = Buffer.from(c.configData ?? '', 'base64').toString('utf8');
      let config: unknown = text;
      try {
        config = text ? (JSON.parse(text) as unknown) : {};
      } catch {
        // not JSON: keep the text
      }
      return {
        section: c.configType ?? c.configId ?? '',
        checksum: c.checksum,
        updatedAt: c.updatedAt,
        config,
      };
    });
    if (!this.jsonEnabled()) {
      const one = sections.length === 1 && args.section;
      this.out(
        sections.map((s) => `${one ? '' : `# ${s.section}\n`}${stringify(s.config).trimEnd()}`).join('\n\n'),
      );
    }
    return { sections, lastUpdated: res.lastUpdated };
  }
}
