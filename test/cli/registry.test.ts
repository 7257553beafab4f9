import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CliFailure } from '../../cli/exit-codes.js';
import { canonicalRpcName, findRpc, listRpcs } from '../../cli/rpc-registry.js';
import { REPO_ROOT } from './support/oclif.js';

/** `rpc Name(Req) returns (stream? Res)` lines of one service block, read from the .proto text. */
function protoRpcs(file: string, service: string) {
  const text = readFileSync(join(REPO_ROOT, 'proto/marchproxy', file), 'utf8');
  const block = new RegExp(`service ${service} \\{([\\s\\S]*?)\\n\\}`).exec(text)?.[1] ?? '';
  return [...block.matchAll(/rpc (\w+)\((\w+)\) returns \((stream )?(\w+)\)/g)].map((m) => ({
    fullName: `marchproxy.${service}/${m[1]}`,
    requestType: `marchproxy.${m[2]}`,
    responseType: `marchproxy.${m[4]}`,
    kind: m[3] ? 'server-streaming' : 'unary',
  }));
}

describe('rpc registry', () => {
  it('has all 46 RPCs: 21 NLBService and 25 ModuleService', () => {
    const rpcs = listRpcs();
    expect(rpcs).toHaveLength(46);
    expect(rpcs.filter((r) => r.service === 'marchproxy.NLBService')).toHaveLength(21);
    expect(rpcs.filter((r) => r.service === 'marchproxy.ModuleService')).toHaveLength(25);
  });

  it('matches the .proto files: names, message types and streaming', () => {
    const expected = [...protoRpcs('nlb.proto', 'NLBService'), ...protoRpcs('module.proto', 'ModuleService')];
    expect(expected).toHaveLength(46);
    const actual = listRpcs().map(({ fullName, requestType, responseType, kind }) => ({
      fullName,
      requestType,
      responseType,
      kind,
    }));
    expect(actual).toEqual(expected);
  });

  it('pairs each RPC with its generated path and message functions', () => {
    for (const rpc of listRpcs()) {
      expect(rpc.definition.path).toBe(`/${rpc.fullName}`);
      // A request survives encode → decode through the definition's serializers.
      const bytes = rpc.definition.requestSerialize(rpc.request.fromJSON({}));
      expect(Buffer.isBuffer(bytes)).toBe(true);
      expect(rpc.response.toJSON(rpc.definition.responseDeserialize(Buffer.alloc(0)))).toEqual({});
    }
  });

  it.each([
    ['marchproxy.NLBService/GetNLBStatus'],
    ['/marchproxy.NLBService/GetNLBStatus'],
    ['NLBService/GetNLBStatus'],
    ['NLBService.GetNLBStatus'],
    ['marchproxy.NLBService.GetNLBStatus'],
    [' NLBService/GetNLBStatus '],
  ])('finds %j', (name) => {
    expect(findRpc(name).fullName).toBe('marchproxy.NLBService/GetNLBStatus');
  });

  it('canonicalises ModuleService names too', () => {
    expect(canonicalRpcName('ModuleService.Drain')).toBe('marchproxy.ModuleService/Drain');
    expect(findRpc('ModuleService/StreamMetrics').kind).toBe('server-streaming');
  });

  it('refuses an unknown name with a usage error listing close matches', () => {
    const err = (() => {
      try {
        findRpc('NLBService/GetNlbStatus');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CliFailure);
    expect((err as CliFailure).exitCode).toBe(2);
    expect((err as CliFailure).message).toBe(
      'unknown RPC "NLBService/GetNlbStatus"; did you mean "marchproxy.NLBService/GetNLBStatus"? `mpctl call --list` lists all 46',
    );
  });

  it('says so when nothing is close', () => {
    expect(() => findRpc('Zzzzzzzzzzzz')).toThrow(
      'unknown RPC "Zzzzzzzzzzzz"; nothing close; `mpctl call --list` lists all 46',
    );
  });
});
