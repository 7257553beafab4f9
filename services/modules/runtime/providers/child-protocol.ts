/**
 * Messages between a controller and an instance child process. The launch (`start`, `started`,
 * `start-failed`) goes over Node's IPC channel of the fork; everything after it goes over the
 * instance's control socket (control-channel.ts), so that a restarted controller, which is not
 * the instance's parent, speaks the same protocol as the one that started it.
 */
import type { InstanceSnapshot, InstanceStatus } from '../instance.js';
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
  control: {
    /** Unix domain socket to serve the control protocol on. */
    socketPath: string;
    /** A controller must present this in `hello` before anything else is answered. */
    secret: string;
    /** How long the instance serves on without a controller before it drains and exits. */
    orphanTimeoutMs: number;
  };
}

/** First request on a control connection: who is calling, and on whose behalf. */
export interface ChildHello {
  type: 'hello';
  reqId: number;
  instanceId: string;
  secret: string;
}

/** The instance's answer to `hello`: what it is, so the controller can judge whether to adopt it. */
export interface ChildIdentity {
  instanceId: string;
  moduleType: string;
  version: string;
  pid: number;
  trafficAddress: string;
  startedAtMs: number;
  status: InstanceStatus;
  /** The controller address it registered with the NLB, and the NLB it talks to. */
  controllerAddress: string;
  nlbTarget: string;
}

export type ChildRequest =
  | ChildHello
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
