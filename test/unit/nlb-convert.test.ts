import { describe, expect, it } from 'vitest';
import { HealthStatus, ModuleType, Protocol, ProxyProtocolMode } from '../../proto/gen/marchproxy/types.js';
import {
  healthEnum,
  healthName,
  instanceToProto,
  moduleTypeEnum,
  moduleTypeName,
  protocolEnum,
  protocolName,
} from '../../services/nlb/transport/convert.js';
import { domainError, instance } from './nlb-fixtures.js';

describe('instanceToProto', () => {
  it('converts a record, adding registration_id and last_heartbeat after the instance metadata', () => {
    const r = instance({
      metadata: { zone: 'a', '10': 'numeric key', node: 'n1' },
      registrationId: 'reg-7',
      lastHeartbeatAtMs: Date.UTC(2025, 0, 2, 3, 4, 5, 6),
      registeredAtMs: 5000,
      protocols: ['HTTP', 'HTTPS'],
      health: 'DEGRADED',
      connections: 3,
      stats: null,
    });
    const m = instanceToProto(r, 40);
    expect(m).toEqual({
      instanceId: 'alb-1',
      moduleType: ModuleType.MODULE_TYPE_ALB,
      address: r.address,
      healthStatus: HealthStatus.HEALTH_STATUS_DEGRADED,
      metadata: {
        '10': 'numeric key',
        zone: 'a',
        node: 'n1',
        registration_id: 'reg-7',
        last_heartbeat: '2025-01-02T03:04:05.006Z',
      },
      startedAt: new Date(5000),
      currentConnections: 3,
      maxConnections: 0,
      version: '1.0',
      trafficWeight: 40,
      trafficAddress: r.trafficAddress,
      proxyProtocol: ProxyProtocolMode.PROXY_PROTOCOL_MODE_V2,
      draining: false,
      protocols: [Protocol.PROTOCOL_HTTP, Protocol.PROTOCOL_HTTPS],
    });
    // Key order as a spread gives it (integer-like keys first, then insertion order).
    expect(Object.keys(m.metadata)).toEqual(['10', 'zone', 'node', 'registration_id', 'last_heartbeat']);
    // The record's own metadata is not touched.
    expect(r.metadata).toEqual({ zone: 'a', '10': 'numeric key', node: 'n1' });
  });

  it("lets the NLB's own keys win over instance metadata of the same name", () => {
    const r = instance({ metadata: { registration_id: 'forged', a: '1' }, registrationId: 'reg-1' });
    const m = instanceToProto(r, 0);
    expect(m.metadata.registration_id).toBe('reg-1');
    expect(Object.keys(m.metadata)).toEqual(['registration_id', 'a', 'last_heartbeat']);
  });
});

describe('enum conversions', () => {
  it('maps names and enums both ways, the same every time', () => {
    for (let k = 0; k < 2; k++) {
      expect(moduleTypeName(ModuleType.MODULE_TYPE_DBLB, 'f')).toBe('DBLB');
      expect(moduleTypeEnum('RTMP')).toBe(ModuleType.MODULE_TYPE_RTMP);
      expect(healthName(HealthStatus.HEALTH_STATUS_STARTING, 'f')).toBe('STARTING');
      expect(healthEnum('UNHEALTHY')).toBe(HealthStatus.HEALTH_STATUS_UNHEALTHY);
      expect(protocolName(Protocol.PROTOCOL_POSTGRES, 'f')).toBe('POSTGRES');
      expect(protocolEnum('MYSQL')).toBe(Protocol.PROTOCOL_MYSQL);
      expect(protocolEnum(null)).toBe(Protocol.PROTOCOL_UNSPECIFIED);
    }
    expect(moduleTypeName(ModuleType.MODULE_TYPE_UNSPECIFIED, 'f')).toBeNull();
    expect(healthName(HealthStatus.HEALTH_STATUS_UNSPECIFIED, 'f')).toBeNull();
  });

  it('still refuses unknown values, naming the field, however often asked', () => {
    for (let k = 0; k < 2; k++) {
      expect(domainError(() => healthName(99 as HealthStatus, 'status')).message).toBe(
        'status 99 is not a known health status',
      );
      expect(domainError(() => protocolName(99 as Protocol, 'route.protocol')).message).toBe(
        'route.protocol 99 is not a known protocol',
      );
      expect(domainError(() => moduleTypeName(ModuleType.MODULE_TYPE_NLB, 'module_type')).kind).toBe(
        'invalid_argument',
      );
    }
  });
});

describe('instanceToProto metadata keys', () => {
  it('copies a "__proto__" metadata key as a plain key, as a spread would', () => {
    const metadata = JSON.parse('{"__proto__": "x", "a": "1"}') as Record<string, string>;
    const m = instanceToProto(instance({ metadata }), 0);
    expect(Object.getPrototypeOf(m.metadata)).toBe(Object.prototype);
    expect(Object.keys(m.metadata)).toEqual(['__proto__', 'a', 'registration_id', 'last_heartbeat']);
    expect(Object.getOwnPropertyDescriptor(m.metadata, '__proto__')?.value).toBe('x');
  });
});
