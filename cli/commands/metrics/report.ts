import { Flags } from '@oclif/core';
import { usageFailure } from '../../exit-codes.js';
import { readStructuredFile } from '../../file-input.js';
import { expandEnums } from '../../nlb-support.js';
import { RpcCommand } from '../../rpc-command.js';

/** ReportMetricsResponse in protobuf JSON. */
interface ReportMetricsJson {
  acknowledged?: boolean;
  message?: string;
  processedAt?: string;
}

export default class MetricsReport extends RpcCommand {
  static rpc = 'marchproxy.NLBService/ReportMetrics';
  static override summary = "Store a batch of an instance's samples in the NLB (as a module would)";
  static override description =
    '-f takes YAML or JSON: a list of samples ({name, value, labels, timestamp}), an object with "metrics" holding that list, or a whole ReportMetricsRequest ({instance_id, metrics: {metrics: [...]}}). --instance names the instance when the file does not. Samples without a timestamp are stamped by the NLB.';

  static override examples = [
    '<%= config.bin %> <%= command.id %> --instance alb-1 -f samples.yaml',
    'echo \'[{"name":"requests_total","value":42}]\' | <%= config.bin %> <%= command.id %> --instance alb-1 -f -',
  ];

  static override flags = {
    file: Flags.string({ char: 'f', description: 'Samples, YAML or JSON (- reads stdin)', required: true }),
    instance: Flags.string({ description: 'Instance the samples belong to' }),
  };

  public async run(): Promise<ReportMetricsJson> {
    const { flags } = await this.parse(MetricsReport);
    const source = `--file ${flags.file}`;
    const doc = expandEnums(await readStructuredFile(flags.file));
    let request: Record<string, unknown>;
    if (Array.isArray(doc)) {
      request = { metrics: { metrics: doc } };
    } else if (typeof doc === 'object' && doc !== null) {
      const obj = doc as Record<string, unknown>;
      request = Array.isArray(obj.metrics) ? { ...obj, metrics: { metrics: obj.metrics } } : { ...obj };
    } else {
      throw usageFailure(`${source} must hold a list of samples or an object with "metrics"`);
    }
    if (flags.instance) request.instanceId = flags.instance;
    if (!request.instanceId && !request.instance_id) {
      throw usageFailure(
        'say which instance the samples belong to: --instance <id> (or instance_id in the file)',
      );
    }
    const res = await this.callNlb<ReportMetricsJson>(flags, 'ReportMetrics', request, source);
    if (!this.jsonEnabled()) this.out(res.message ?? 'stored');
    return res;
  }
}
