/**
 * Batching of a worker's data-plane events (docs/dataplane.md "Workers"): the worker records its
 * observer calls, routing outcomes, connection count changes and connect outcomes into a
 * `WorkerReport`, sent every few milliseconds; the primary replays the report into the real
 * observer (Prometheus, the metrics store's totals), the registry and the outlier detector.
 * The same calls reach the same series as in one process, only batched.
 */
import type { CloseReason } from './forward.js';
import type { ConnectionLabels, DataplaneObserver } from './listener.js';
import type { WorkerReport } from './worker-protocol.js';

type LabelsTuple = [
  listener: string,
  protocol: string,
  moduleType: string,
  version: string,
  instance: string,
];

/** Keys of labelled calls are cached per labels object (one per connection). */
const labelKeys = new WeakMap<ConnectionLabels, string>();

export function labelsKey(l: ConnectionLabels): string {
  let k = labelKeys.get(l);
  if (k === undefined) {
    k = JSON.stringify([l.listener, l.protocol, l.module_type, l.version, l.instance] satisfies LabelsTuple);
    labelKeys.set(l, k);
  }
  return k;
}

function labelsOf(key: string): ConnectionLabels {
  const [listener, protocol, module_type, version, instance] = JSON.parse(key) as LabelsTuple;
  return { listener, protocol, module_type, version, instance };
}

/** Kinds of counted calls: accepted, rejected, detection failed, routing failed, connect failed, closed. */
type CountKey =
  | ['a', string]
  | ['r', string, string]
  | ['d', string, string]
  | ['f', string, string, string]
  | ['c', string, string]
  | ['x', string, string];

/** An observer that records calls for the next report instead of acting on them. */
export class ReportingObserver implements DataplaneObserver {
  private counts = new Map<string, number>();
  private connectMs = new Map<string, number[]>();
  private bytesBy = new Map<string, [number, number]>();

  private count(k: CountKey): void {
    const key = JSON.stringify(k);
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  accepted(listener: string): void {
    this.count(['a', listener]);
  }
  rejected(listener: string, reason: string): void {
    this.count(['r', listener, reason]);
  }
  detectionFailed(listener: string, reason: string): void {
    this.count(['d', listener, reason]);
  }
  routingFailed(listener: string, protocol: string, reason: string): void {
    this.count(['f', listener, protocol, reason]);
  }
  connectFailed(labels: ConnectionLabels, reason: string): void {
    this.count(['c', labelsKey(labels), reason]);
  }
  opened(labels: ConnectionLabels, connectMs: number): void {
    const k = labelsKey(labels);
    const list = this.connectMs.get(k);
    if (list) list.push(connectMs);
    else this.connectMs.set(k, [connectMs]);
  }
  bytes(labels: ConnectionLabels, bytesIn: number, bytesOut: number): void {
    const k = labelsKey(labels);
    const b = this.bytesBy.get(k);
    if (b) {
      b[0] += bytesIn;
      b[1] += bytesOut;
    } else this.bytesBy.set(k, [bytesIn, bytesOut]);
  }
  closed(labels: ConnectionLabels, reason: CloseReason): void {
    this.count(['x', labelsKey(labels), reason]);
  }
  /** Ejections are decided by the primary (it replays connect outcomes). */
  ejected(): void {}

  get empty(): boolean {
    return this.counts.size === 0 && this.connectMs.size === 0 && this.bytesBy.size === 0;
  }

  /** Moves what was recorded into `into` and starts afresh. */
  take(into: Pick<WorkerReport, 'counts' | 'connectMs' | 'bytes'>): void {
    into.counts = [...this.counts];
    into.connectMs = [...this.connectMs];
    into.bytes = [...this.bytesBy].map(([k, [i, o]]) => [k, i, o]);
    this.counts = new Map();
    this.connectMs = new Map();
    this.bytesBy = new Map();
  }
}

/**
 * Replays a report's observer calls into `observer`. `onOpenChange` sees each labels key whose
 * open-connection count changed (opened − closed), so that a worker that dies can be closed out.
 */
export function replayObserver(
  r: Pick<WorkerReport, 'counts' | 'connectMs' | 'bytes'>,
  observer: DataplaneObserver,
  onOpenChange?: (labelsKey: string, delta: number) => void,
): void {
  // Opened before bytes and closed: the Prometheus active gauge never dips below zero.
  for (const [k, list] of r.connectMs) {
    const labels = labelsOf(k);
    for (const ms of list) observer.opened(labels, ms);
    onOpenChange?.(k, list.length);
  }
  for (const [k, i, o] of r.bytes) observer.bytes(labelsOf(k), i, o);
  for (const [key, n] of r.counts) {
    const k = JSON.parse(key) as CountKey;
    for (let j = 0; j < n; j++) {
      switch (k[0]) {
        case 'a':
          observer.accepted(k[1]);
          break;
        case 'r':
          observer.rejected(k[1], k[2]);
          break;
        case 'd':
          observer.detectionFailed(k[1], k[2]);
          break;
        case 'f':
          observer.routingFailed(k[1], k[2], k[3]);
          break;
        case 'c':
          observer.connectFailed(labelsOf(k[1]), k[2]);
          break;
        case 'x':
          observer.closed(labelsOf(k[1]), k[2] as CloseReason);
          break;
      }
    }
    if (k[0] === 'x') onOpenChange?.(k[1], -n);
  }
}

/** Closes out connections a dead worker left open: `closed(labels, 'aborted')` for each. */
export function closeOut(open: Map<string, number>, observer: DataplaneObserver): void {
  for (const [k, n] of open) {
    const labels = labelsOf(k);
    for (let j = 0; j < n; j++) observer.closed(labels, 'aborted');
  }
  open.clear();
}
