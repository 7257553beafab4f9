/** Messages between a controller and an instance child process (over Node's IPC channel). */
import type { InstanceSnapshot } from '../instance.js';
import type { InstanceLaunch } from './provider.js';

export interface ChildInit {
  type: 'start';
  moduleType: string;
  logLevel: string;
  nlb: {
    target: string;
    token?: string;
    tls?: { caFile?: string; certFile?: string; keyFile?: string } | false;
  };
  launch: InstanceLaunch;
}

export type ChildRequest =
  | { type: 'status'; reqId: number }
  | { type: 'stats'; reqId: number; reset: boolean }
  | { type: 'apply'; reqId: number; snapshot: InstanceSnapshot }
  | { type: 'drain'; reqId: number; timeoutMs: number }
  | { type: 'stop'; reqId: number; graceful: boolean; timeoutMs: number };

export type ChildReply = { type: 'reply'; reqId: number; value?: unknown; error?: string };

export type ChildEvent =
  | { type: 'started'; trafficAddress: string }
  | { type: 'start-failed'; message: string }
  | { type: 'reload-requested' };
