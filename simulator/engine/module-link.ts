/**
 * How the NLB reaches module controllers in a simulation: the NLB's own gRPC ModulePort, with
 * every call tracked for virtual time and `Scale` failing while a failScale fault says so.
 */
import * as grpc from '@grpc/grpc-js';
import type { ModulePort } from '../../services/nlb/ports.js';
import { createGrpcModulePort } from '../../services/nlb/transport/module-port.js';
import type { Inflight } from './virtual-time.js';

export interface ModuleLink extends ModulePort {
  close(): void;
}

/** `scaleFault(address)` returns why a Scale call to that controller fails now, or null. */
export function createModuleLink(
  inflight: Inflight,
  scaleFault: (address: string) => string | null,
): ModuleLink {
  const port = createGrpcModulePort();
  return {
    canHandle: (...a) => inflight.track('module.canHandle', port.canHandle(...a)),
    healthCheck: (...a) => inflight.track('module.healthCheck', port.healthCheck(...a)),
    scale(address, request, timeoutMs) {
      const fault = scaleFault(address);
      if (fault)
        return Promise.reject(
          Object.assign(new Error(`${grpc.status.UNAVAILABLE} UNAVAILABLE: ${fault}`), {
            code: grpc.status.UNAVAILABLE,
          }),
        );
      return inflight.track('module.scale', port.scale(address, request, timeoutMs));
    },
    close: () => port.close(),
  };
}
